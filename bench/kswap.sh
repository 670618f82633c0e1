# bench/kswap.sh - sourced by the bench scripts that compare with the kernel:
# a zram swap device (lz4, 4G) of their own and a memcg v1 group with the
# limit, and their removal. The caller sets $cg (the memcg path),
# $limit_bytes and $tmp (removed too), and traps EXIT to teardown.
zdev=          # zramN once we own one
zhot=0         # 1 if we created it with hot_add (then we remove it)
zswap=0        # 1 once it is our swap

teardown() {
	if [ "$zswap" = 1 ]; then
		# Other cgroups' pages land on our device too (it has the highest
		# priority), and swapoff fails with ENOMEM while one of them is at
		# its limit: seen once on a shared host, fine a few seconds later.
		local try
		for try in 1 2 3 4 5 6; do
			swapoff "/dev/$zdev" 2>/dev/null && break
			[ $try = 6 ] && echo "kswap.sh: swapoff /dev/$zdev failed: $(swapoff "/dev/$zdev" 2>&1)" >&2
			sleep 5
		done
	fi
	if [ -n "$zdev" ]; then
		echo 1 > "/sys/block/$zdev/reset" 2>/dev/null || true
		if [ "$zhot" = 1 ]; then
			echo "${zdev#zram}" > /sys/class/zram-control/hot_remove 2>/dev/null || true
		fi
	fi
	if [ -d "$cg" ]; then
		rmdir "$cg" 2>/dev/null || echo "kswap.sh: could not remove $cg" >&2
	fi
	rm -rf "$tmp"
}

# setup_kernel: a zram swap device (lz4, 4G) and a memcg v1 group with the
# limit; on failure returns 1 with the reason in $why (teardown undoes what
# was done).
why=
setup_kernel() {
	local dev
	[ "$(id -u)" = 0 ] || { why="not root"; return 1; }
	[ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ] ||
		{ why="no cgroup v1 memory controller at /sys/fs/cgroup/memory"; return 1; }
	if [ ! -e /sys/class/zram-control ]; then
		modprobe zram 2>/dev/null || true
	fi
	# A device of our own: reading hot_add creates one and names it. Without
	# zram-control, an unused (never sized) one.
	if [ -r /sys/class/zram-control/hot_add ] && dev=$(cat /sys/class/zram-control/hot_add 2>/dev/null); then
		zdev=zram$dev
		zhot=1
	else
		for dev in /sys/block/zram*; do
			if [ -e "$dev/disksize" ] && [ "$(cat "$dev/disksize")" = 0 ] &&
				! grep -q "^/dev/${dev##*/} " /proc/swaps; then
				zdev=${dev##*/}
				break
			fi
		done
	fi
	[ -n "$zdev" ] || { why="no zram device (modprobe zram failed, or all in use)"; return 1; }
	grep -qw lz4 "/sys/block/$zdev/comp_algorithm" ||
		{ why="zram has no lz4 ($(cat "/sys/block/$zdev/comp_algorithm"))"; return 1; }
	if ! { echo lz4 > "/sys/block/$zdev/comp_algorithm" && echo 4G > "/sys/block/$zdev/disksize"; }; then
		why="could not configure /sys/block/$zdev"
		return 1
	fi
	mkswap "/dev/$zdev" >/dev/null 2>&1 || { why="mkswap /dev/$zdev failed"; return 1; }
	# The highest priority: the kernel swaps there first, whatever else is on.
	swapon -p 32767 "/dev/$zdev" || { why="swapon /dev/$zdev failed"; return 1; }
	zswap=1
	mkdir "$cg" 2>/dev/null || { why="cannot create $cg"; return 1; }
	echo "$limit_bytes" > "$cg/memory.limit_in_bytes" || { why="cannot set the memcg limit"; return 1; }
	if [ -e "$cg/memory.memsw.limit_in_bytes" ]; then
		echo -1 > "$cg/memory.memsw.limit_in_bytes"
	fi
	echo 60 > "$cg/memory.swappiness"
}


/* creds.c - the agent's threads follow the application's privilege changes (glibc's set*id broadcast). */
#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"

/*
 * Credentials are per thread in Linux. glibc makes set*id and setgroups
 * process-wide by running the same syscall in every thread (it signals
 * each with SIGSETXID) and aborts the process if the threads' results
 * differ. Capabilities, KEEPCAPS and securebits are per thread too and not
 * broadcast: setpriv (and libcap-ng's capng_change_id) set KEEPCAPS and
 * call capset in their own thread, then setresuid (the agent's threads,
 * without KEEPCAPS, lose every capability) and setresgid, which succeeds in
 * the main thread and fails with EPERM in the agent's: SIGABRT (measured
 * with strace on `memgrp run -- setpriv --reuid U --regid G ...`).
 *
 * So the set*id family is interposed to note the calling thread's
 * capability state (capget, KEEPCAPS, securebits) just before glibc's
 * broadcast, and glibc's SIGSETXID handler is wrapped: in an agent thread
 * it first takes that state (securebits, then KEEPCAPS, then capset, which
 * only lowers or raises within the permitted set), so that the syscall
 * glibc then runs there meets the same credentials as in the caller and
 * gives the same result. The agent's threads never hold more than the
 * application's thread did: a program that drops everything leaves none
 * in them. Nothing is done where there is nothing to follow (no agent
 * thread, or glibc has not installed its handler).
 */

#define MGI_EXPORT __attribute__((visibility("default")))
#define SIGSETXID_NR 33 /* glibc's internal signal (SIGRTMIN - 1 on Linux) */

struct kernel_sigaction {
	void (*handler)(int, siginfo_t *, void *);
	unsigned long flags;
	void (*restorer)(void);
	uint64_t mask;
};

static struct {
	struct __user_cap_data_struct caps[2];
	int keepcaps, securebits;
	bool valid;
} noted;
static pthread_mutex_t noting = PTHREAD_MUTEX_INITIALIZER;
static struct kernel_sigaction glibc_setxid;
static bool wrapped;
static __thread bool agent_thread __attribute__((tls_model("initial-exec")));

void mgi_creds_agent_thread(void)
{
	agent_thread = true;
}

/* Raw, not through glibc's prctl: a sanitizer runtime intercepts prctl,
 * and its interceptor may touch memory the handler thread would fault on
 * (seen under ASan: the agent's threads stuck in handle_userfault). */
static long raw_prctl(int op, unsigned long arg)
{
	return syscall(SYS_prctl, op, arg, 0UL, 0UL, 0UL);
}

static void follow(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};

	if (!noted.valid)
		return;
	if (raw_prctl(PR_GET_SECUREBITS, 0) != noted.securebits)
		raw_prctl(PR_SET_SECUREBITS, (unsigned long)noted.securebits);
	if (raw_prctl(PR_GET_KEEPCAPS, 0) != noted.keepcaps)
		raw_prctl(PR_SET_KEEPCAPS, (unsigned long)noted.keepcaps);
	syscall(SYS_capset, &h, noted.caps);
}

static void on_setxid(int sig, siginfo_t *si, void *ctx)
{
	int saved = errno;

	if (agent_thread)
		follow();
	errno = saved;
	glibc_setxid.handler(sig, si, ctx);
}

/* A fork while another thread held the lock leaves it held in the child,
 * whose first set*id would wait for ever. */
static void child_unlock(void)
{
	pthread_mutex_init(&noting, NULL);
	noted.valid = false;
}

void mgi_creds_init(void)
{
	static bool atfork;

	struct kernel_sigaction ours, now;

	/* A forked child's agent starts again with the handler wrapped
	 * already (sigactions survive fork): wrapping it again would make it
	 * call itself. */
	if (wrapped && syscall(SYS_rt_sigaction, SIGSETXID_NR, NULL, &now, sizeof(uint64_t)) == 0 &&
	    now.handler == on_setxid)
		return;

	/* glibc installs its handler at the first pthread_create (the
	 * agent's own threads are started by now); raw rt_sigaction, as
	 * glibc's sigaction refuses its internal signals. */
	if (syscall(SYS_rt_sigaction, SIGSETXID_NR, NULL, &glibc_setxid, sizeof(uint64_t)) != 0 ||
	    !glibc_setxid.handler || !(glibc_setxid.flags & SA_SIGINFO))
		return;
	if (!atfork)
		atfork = pthread_atfork(NULL, NULL, child_unlock) == 0;
	ours = glibc_setxid;
	ours.handler = on_setxid;
	wrapped = syscall(SYS_rt_sigaction, SIGSETXID_NR, &ours, NULL, sizeof(uint64_t)) == 0;
}

/* The caller's state, for the agent's threads to take in the broadcast
 * that follows. Held until the broadcast is over: two threads changing
 * credentials at once are served one after the other. */
static void note(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};

	pthread_mutex_lock(&noting);
	noted.valid = wrapped && syscall(SYS_capget, &h, noted.caps) == 0 &&
		      (noted.keepcaps = (int)raw_prctl(PR_GET_KEEPCAPS, 0)) >= 0 &&
		      (noted.securebits = (int)raw_prctl(PR_GET_SECUREBITS, 0)) >= 0;
}

static void noted_done(void)
{
	noted.valid = false;
	pthread_mutex_unlock(&noting);
}

#define FOLLOWED(name, params, args)                                             \
	MGI_EXPORT int name params                                               \
	{                                                                        \
		static int(*next) params;                                        \
		int rc_, errno_;                                                 \
		if (!next)                                                       \
			next = (int(*) params)dlsym(RTLD_NEXT, #name);           \
		if (!next) {                                                     \
			errno = ENOSYS;                                          \
			return -1;                                               \
		}                                                                \
		note();                                                          \
		rc_ = next args;                                                 \
		errno_ = errno;                                                  \
		noted_done();                                                    \
		errno = errno_;                                                  \
		return rc_;                                                      \
	}

FOLLOWED(setuid, (uid_t u), (u))
FOLLOWED(setgid, (gid_t g), (g))
FOLLOWED(seteuid, (uid_t u), (u))
FOLLOWED(setegid, (gid_t g), (g))
FOLLOWED(setreuid, (uid_t r, uid_t e), (r, e))
FOLLOWED(setregid, (gid_t r, gid_t e), (r, e))
FOLLOWED(setresuid, (uid_t r, uid_t e, uid_t s), (r, e, s))
FOLLOWED(setresgid, (gid_t r, gid_t e, gid_t s), (r, e, s))
FOLLOWED(setgroups, (size_t n, const gid_t *list), (n, list))

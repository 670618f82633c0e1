// gohold - a Go program (built static: CGO_ENABLED=0, no dynamic linker, so no agent can load) that holds MB mebibytes in 1 MiB slices, touched page by page, and checks them.
// Usage: gohold MB [SECONDS]   prints "holding MB" when all is touched, "done MB SUM" at the end.
package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gohold MB [SECONDS]")
		os.Exit(2)
	}
	mb, err := strconv.Atoi(os.Args[1])
	if err != nil || mb < 1 {
		fmt.Fprintln(os.Stderr, "gohold: MB is a positive number")
		os.Exit(2)
	}
	secs := 0.0
	if len(os.Args) > 2 {
		secs, _ = strconv.ParseFloat(os.Args[2], 64)
	}
	// The held slices are live: the collector cannot free them; keep the
	// heap from doubling past what is held before it collects.
	debug.SetGCPercent(10)
	held := make([][]byte, mb)
	for i := range held {
		held[i] = make([]byte, 1<<20)
		for j := 0; j < len(held[i]); j += 4096 {
			held[i][j] = byte(i + j/4096)
		}
	}
	fmt.Printf("holding %d\n", mb)
	time.Sleep(time.Duration(secs * float64(time.Second)))
	sum := 0
	for i := range held {
		for j := 0; j < len(held[i]); j += 4096 {
			if held[i][j] != byte(i+j/4096) {
				fmt.Fprintf(os.Stderr, "gohold: slice %d page %d changed\n", i, j/4096)
				os.Exit(1)
			}
			sum += int(held[i][j])
		}
	}
	fmt.Printf("done %d %d\n", mb, sum)
}

/* thread.c - starting the agent's own threads (handler, watchdog, releaser) safely. */
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "account.h"
#include "agent.h"
#include "options.h"
#include "victim.h"
#include "os.h"
#include "proto.h"
#include "size.h"
#include "trace.h"

typedef struct {
	void *(*fn)(void *);
	void *arg;
	sem_t up;
} thread_start_t;

void *mgi_thread_trampoline(void *p)
{
	thread_start_t *ts = p;
	void *(*fn)(void *) = ts->fn;
	void *arg = ts->arg;

	/* No alternate signal stack: glibc runs its SIGSETXID handler (every
	 * set*id call of the application) on one, and a sanitizer's runtime
	 * gives each new thread one in memory the handler registers: the
	 * handler thread then faulted there, on itself, and the process hung
	 * (measured under ASan: any setresuid, even to the same ids). Raw:
	 * the runtime intercepts sigaltstack. */
	stack_t none = {.ss_flags = SS_DISABLE};
	syscall(SYS_sigaltstack, &none, NULL);
	mgi_creds_agent_thread();
	sem_post(&ts->up); /* ts lives on the creator's stack: not used after this */
	return fn(arg);
}

/* Starts an agent thread on a stack from the arena, with every signal
 * blocked (signals are for the application's threads), and returns only
 * once it runs our code. A new thread first runs library code, and a
 * sanitizer's runtime allocates there under its allocator's locks: had
 * the application forked meanwhile, the child would inherit those locks
 * held and its own agent threads would wait on them forever (seen under
 * ASan: `sh -c "prog &"` forks right after start). Waiting also keeps the
 * handler's scan from registering the heap while another agent thread
 * may still allocate from it. */
_Atomic unsigned mgi_agent_threads;
const pthread_attr_t *_Atomic mgi_agent_attr; /* (inherited: it only tells our own starts apart) */

int mgi_start_thread(pthread_t *t, void *stack, size_t size, void *(*fn)(void *), void *arg)
{
	thread_start_t ts = {.fn = fn, .arg = arg};
	pthread_attr_t attr;
	sigset_t all, old;
	int rc;

	if (sem_init(&ts.up, 0, 0) != 0)
		return -errno;
	pthread_attr_init(&attr);
	pthread_attr_setstack(&attr, stack, size);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	atomic_store(&mgi_agent_attr, &attr);
	rc = pthread_create(t, &attr, mgi_thread_trampoline, &ts);
	atomic_store(&mgi_agent_attr, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc == 0) {
		atomic_fetch_add(&mgi_agent_threads, 1);
		while (sem_wait(&ts.up) != 0 && errno == EINTR)
			;
	}
	sem_destroy(&ts.up);
	return -rc;
}

/* grantd.h - the manager's side of the grant scheme (src/daemon/grant.c). */
#ifndef MGI_DAEMON_GRANTD_H
#define MGI_DAEMON_GRANTD_H

#include <stdbool.h>
#include <stdint.h>

#include "manager.h"

/* A GRANT from the agent on connection c: validated (its joined slot, its
 * pid, a nested group), given along the group's chain, or refused naming
 * the ancestor after its groups' unused grants were taken back; answered
 * with GRANTED. */
void mgi_grant_on_request(mgi_manager_t *m, struct mgi_conn *c, const mgi_msg_grant_t *r);

/* Takes back what nested groups hold beyond their usage and a batch
 * (deepest first, so a child's return can leave its parent's grant
 * unused in the same pass), at most once a second; cheap to call often
 * (the manager's poll loop). */
void mgi_grant_tick(mgi_manager_t *m);

/* The tick's timer (armed while a nested group holds grant beyond its
 * usage, so that an idle manager takes it back too): true if tag is its
 * (mgi_manager_poll runs the tick after every wake). */
bool mgi_grant_event(mgi_manager_t *m, uint64_t tag);

/* A process of group g left it (exited, moved): what the group holds of
 * its grant beyond its usage goes back to its ancestors now. */
void mgi_grant_after_release(mgi_manager_t *m, int g);

/* Gives nested group g swap grant for pages about to be evicted (EVICT):
 * what it lacks of them beyond what it holds unused. */
void mgi_grant_for_evict(mgi_manager_t *m, int g, uint64_t pages);

/* Gives group g grant for a process moving in with pages of memory and
 * swapped of swap (ATTACH): 0, or -ENOMEM with why. */
int mgi_grant_for_move(mgi_manager_t *m, int g, uint64_t pages, uint64_t swapped, char *why,
		       size_t whylen);

#endif

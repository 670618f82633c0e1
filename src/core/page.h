/* page.h - the one page size memgrp counts in (every counter and limit is in these pages). */
#ifndef MGI_PAGE_H
#define MGI_PAGE_H

/* memgrp counts 4 KiB pages; mgi_os_page_size_check (src/os) refuses a
 * kernel whose base page differs. */
#define MGI_PAGE_SIZE 4096UL
#define MGI_PAGE_SHIFT 12
#define MGI_PAGE_KIB (MGI_PAGE_SIZE / 1024) /* pages to KiB, for messages */

#endif

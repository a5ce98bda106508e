/*
 * writer.h: the thread that writes cursor and state files, so that the
 * event loop never waits for a disk.
 *
 * Every file is written with cb2m_write_atomic(): two fsyncs (file and
 * folder) that can take milliseconds each on a disk. With a thousand
 * broadcasters, a loop writing its due files itself once a second stalls
 * deliveries for the whole round. Here the loop formats the files (cheap,
 * and it owns the state), hands them over as one batch, and carries on;
 * the writer thread writes the batch in order and says how it went.
 *
 * One batch at a time: while one is being written the loop keeps its
 * dues, and the next batch holds their newest content. So a broadcaster's
 * file is never written by two hands at once, and a disk that is slow
 * costs later saves, not the loop.
 *
 * Ownership: cb2m_writer_add() copies name and data. Returns follow
 * src/bridge/README.md: CBEV_OK or a cbev_error code.
 */
#ifndef CB2M_WRITER_H
#define CB2M_WRITER_H

#include <stddef.h>

#include "fsutil.h"

typedef struct cb2m_writer cb2m_writer;

/* The outcome of the last finished batch. */
typedef struct cb2m_writer_result {
  int failed;                /* some file could not be written */
  int err;                   /* its errno */
  char file[CB2M_PATH_MAX];  /* its name in dir, "" when none failed */
  size_t written;            /* files written */
} cb2m_writer_result;

/* Starts the thread writing into dir (copied). Returns CBEV_OK, or
 * CBEV_ENOMEM / CBEV_EIO (the thread could not start). */
int cb2m_writer_new(const char *dir, cb2m_writer **out);
/* Finishes the batch being written (one built and not submitted is
 * dropped), then stops the thread. NULL is fine. */
void cb2m_writer_free(cb2m_writer *w);

/* 1 while a batch is being written (add and submit would refuse). */
int cb2m_writer_busy(cb2m_writer *w);
/* Adds file name with a copy of data[0..len) to the batch being built.
 * Returns CBEV_OK; CBEV_EAGAIN while busy; CBEV_ENOMEM. */
int cb2m_writer_add(cb2m_writer *w, const char *name, const void *data, size_t len);
/* Hands the batch built so far to the thread (nothing to do when empty). */
void cb2m_writer_submit(cb2m_writer *w);
/* Takes the outcome of the batch that finished since the last call: 1
 * with *res filled, 0 when none finished (or one is still running). */
int cb2m_writer_collect(cb2m_writer *w, cb2m_writer_result *res);
/* Waits until the batch being written is done (shutdown, reload). */
void cb2m_writer_wait(cb2m_writer *w);

#endif

/*
 * writer.c: cursor and state files written off the event loop. See
 * writer.h.
 *
 * The loop and the thread share one mutex: the loop builds `pending`
 * while the thread is idle; submit moves it to `running` and wakes the
 * thread; the thread writes `running` without the lock, then publishes
 * the result and goes idle. The loop only ever asks (busy, collect), so
 * it never blocks on a write except in cb2m_writer_wait().
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cbevents/error.h"
#include "writer.h"

typedef struct job {
  char *name;
  char *data;
  size_t len;
} job;

typedef struct batch {
  job *v;
  size_t n, cap;
} batch;

struct cb2m_writer {
  char *dir;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  batch pending; /* built by the loop while idle */
  batch running; /* owned by the thread while busy */
  int busy, stop, finished;
  cb2m_writer_result result;
};

static void batch_clear(batch *b) {
  for (size_t i = 0; i < b->n; i++) {
    free(b->v[i].name);
    free(b->v[i].data);
  }
  b->n = 0;
}

/* Writes b in order; every file is tried, the first failure is kept. */
static void write_batch(const char *dir, batch *b, cb2m_writer_result *res) {
  memset(res, 0, sizeof *res);
  for (size_t i = 0; i < b->n; i++) {
    if (cb2m_write_atomic(dir, b->v[i].name, b->v[i].data, b->v[i].len, 0600) == 0) {
      res->written++;
    } else if (!res->failed) {
      res->failed = 1;
      res->err = errno;
      strncpy(res->file, b->v[i].name, sizeof res->file - 1);
    }
  }
}

static void *run(void *arg) {
  cb2m_writer *w = arg;
  cb2m_writer_result res;

  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->busy && !w->stop)
      pthread_cond_wait(&w->cv, &w->mu);
    if (!w->busy)
      break; /* stop, nothing handed over */
    pthread_mutex_unlock(&w->mu);
    write_batch(w->dir, &w->running, &res);
    batch_clear(&w->running);
    pthread_mutex_lock(&w->mu);
    w->result = res;
    w->finished = 1;
    w->busy = 0;
    pthread_cond_broadcast(&w->cv);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

int cb2m_writer_new(const char *dir, cb2m_writer **out) {
  cb2m_writer *w = calloc(1, sizeof *w);
  sigset_t all, old;
  int started;

  if (!w || !(w->dir = strdup(dir))) {
    free(w);
    return CBEV_ENOMEM;
  }
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  /* The thread starts with every signal blocked (it inherits the mask),
   * so SIGTERM/SIGHUP always reach the loop's thread and its poll(); a
   * fault of its own still ends the process with its report. */
  sigfillset(&all);
  sigdelset(&all, SIGSEGV);
  sigdelset(&all, SIGBUS);
  sigdelset(&all, SIGFPE);
  sigdelset(&all, SIGILL);
  sigdelset(&all, SIGABRT);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  started = pthread_create(&w->thread, NULL, run, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (started != 0) {
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->dir);
    free(w);
    return CBEV_EIO;
  }
  *out = w;
  return CBEV_OK;
}

void cb2m_writer_free(cb2m_writer *w) {
  if (!w)
    return;
  pthread_mutex_lock(&w->mu);
  w->stop = 1;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  batch_clear(&w->pending);
  batch_clear(&w->running);
  free(w->pending.v);
  free(w->running.v);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  free(w->dir);
  free(w);
}

int cb2m_writer_busy(cb2m_writer *w) {
  int busy;

  pthread_mutex_lock(&w->mu);
  busy = w->busy;
  pthread_mutex_unlock(&w->mu);
  return busy;
}

int cb2m_writer_add(cb2m_writer *w, const char *name, const void *data, size_t len) {
  batch *b = &w->pending;
  char *name_copy, *data_copy;

  if (cb2m_writer_busy(w))
    return CBEV_EAGAIN;
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 16;
    job *v = realloc(b->v, cap * sizeof *v);
    if (!v)
      return CBEV_ENOMEM;
    b->v = v;
    b->cap = cap;
  }
  name_copy = strdup(name);
  data_copy = malloc(len ? len : 1);
  if (!name_copy || !data_copy) {
    free(name_copy);
    free(data_copy);
    return CBEV_ENOMEM;
  }
  memcpy(data_copy, data, len);
  b->v[b->n++] = (job){name_copy, data_copy, len};
  return CBEV_OK;
}

void cb2m_writer_submit(cb2m_writer *w) {
  pthread_mutex_lock(&w->mu);
  if (!w->busy && w->pending.n) {
    batch t = w->running; /* empty: its array is reused */
    w->running = w->pending;
    w->pending = t;
    w->busy = 1;
    pthread_cond_broadcast(&w->cv);
  }
  pthread_mutex_unlock(&w->mu);
}

int cb2m_writer_collect(cb2m_writer *w, cb2m_writer_result *res) {
  int got;

  pthread_mutex_lock(&w->mu);
  got = w->finished && !w->busy;
  if (got) {
    *res = w->result;
    w->finished = 0;
  }
  pthread_mutex_unlock(&w->mu);
  return got;
}

void cb2m_writer_wait(cb2m_writer *w) {
  pthread_mutex_lock(&w->mu);
  while (w->busy)
    pthread_cond_wait(&w->cv, &w->mu);
  pthread_mutex_unlock(&w->mu);
}

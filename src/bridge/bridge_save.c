/*
 * bridge_save.c: the broadcasters' cursor and state files. Once a second
 * the due ones go to the writer thread (writer.h), so the loop never
 * waits for fsync; at shutdown and for a broadcaster a reload removes,
 * they are written here and now. A disk that fails is fatal either way:
 * going on would promise a durability the disk does not give. See
 * bridge_impl.h.
 *
 * A cursor is due when an acknowledged prefix moved it (collect_acked);
 * a state when an event changed it. Handing a file over clears its due
 * mark; while the writer is busy the marks stay, so the next batch holds
 * the newest content and a file is never written by two hands at once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bridge_impl.h"
#include "cursor.h"
#include "writer.h"

/* The i= of c's due cursor URL into *i (NULL: none). Returns CBEV_OK, or
 * CBEV_ENOMEM (logged). */
static int due_i(bridge *b, bc *c, char **i) {
  *i = NULL;
  if (cb2m_cursor_i_of(c->cursor_url, i) == CBEV_ENOMEM) {
    LOG(b, CBEV_LOG_ERROR, "%s: out of memory while saving the cursor; stopping", c->cfg->name);
    return CBEV_ENOMEM;
  }
  return CBEV_OK;
}

/* A cursor refused for its content (an i= that is not a cursor value) is
 * not the disk's fault: it is skipped with a warning and the previous
 * cursor stays on disk, which may fetch some events again but never
 * loses one. rc is the save's (or the formatting's) outcome. */
static void cursor_done(bridge *b, bc *c, int rc) {
  if (rc == CBEV_EINVAL)
    LOG(b, c->cursor_refused ? CBEV_LOG_DEBUG : CBEV_LOG_WARN,
        "%s: the feed's cursor is not one the cursor file can hold (an odd i= in nextUrl); "
        "the previous cursor stays saved", c->cfg->name);
  c->cursor_refused = rc == CBEV_EINVAL;
  free(c->cursor_url);
  c->cursor_url = NULL;
}

/* The outcome of the writer's last batch: CBEV_OK, or CBEV_EIO (logged)
 * when a file could not be written. */
static int writer_outcome(bridge *b) {
  cb2m_writer_result res;

  if (!cb2m_writer_collect(b->writer, &res) || !res.failed)
    return CBEV_OK;
  LOG(b, CBEV_LOG_ERROR, "cannot write the %s file %s in %s: %s; stopping",
      strstr(res.file, ".cursor") ? "cursor" : "state", res.file, b->cfg->events.state_dir,
      strerror(res.err));
  return CBEV_EIO;
}

int bridge_save_now(bridge *b, bc *c) {
  const char *dir = b->cfg->events.state_dir;
  char *i = NULL;
  int rc = CBEV_OK;

  /* The writer may be writing this broadcaster's files: one hand only. */
  cb2m_writer_wait(b->writer);
  if (writer_outcome(b) != CBEV_OK)
    rc = CBEV_EIO;
  if (c->cursor_url) {
    int r = due_i(b, c, &i);
    if (r != CBEV_OK)
      return r;
    r = (i || c->cursor_id) ? cb2m_cursor_save(dir, c->cfg->name, i, c->cursor_id) : CBEV_OK;
    free(i);
    if (r != CBEV_OK && r != CBEV_EINVAL) {
      LOG(b, CBEV_LOG_ERROR, "%s: cannot write the cursor file in %s: %s; stopping",
          c->cfg->name, dir, strerror(errno));
      return CBEV_EIO;
    }
    cursor_done(b, c, r);
  }
  if (c->state_unsaved) {
    if (cb2m_state_save(dir, c->cfg->name, &c->state) != CBEV_OK) {
      LOG(b, CBEV_LOG_ERROR, "%s: cannot write the state file in %s: %s; stopping",
          c->cfg->name, dir, strerror(errno));
      return CBEV_EIO;
    }
    c->state_unsaved = 0;
  }
  return rc;
}

int bridge_save_all_now(bridge *b) {
  int rc = CBEV_OK;

  for (size_t i = 0; i < b->n; i++)
    if (bridge_save_now(b, &b->bcs[i]) != CBEV_OK)
      rc = CBEV_EIO;
  return rc;
}

/* Adds c's due files to the writer's batch. Returns CBEV_OK or
 * CBEV_ENOMEM (logged). */
static int hand_over(bridge *b, bc *c) {
  char file[CB2M_CURSOR_FILE_MAX > CB2M_STATE_FILE_MAX ? CB2M_CURSOR_FILE_MAX
                                                       : CB2M_STATE_FILE_MAX];
  char *i = NULL, *text = NULL;
  int rc = CBEV_OK;

  if (c->cursor_url) {
    if ((rc = due_i(b, c, &i)) != CBEV_OK)
      goto out;
    if (i || c->cursor_id) {
      text = cb2m_cursor_format(i, c->cursor_id);
      if (!text && errno == ENOMEM)
        goto nomem;
      /* A name is valid (the loader checked it); text NULL: refused. */
      if (text && (cb2m_cursor_file_name(file, sizeof file, c->cfg->name) != CBEV_OK ||
                   cb2m_writer_add(b->writer, file, text, strlen(text)) != CBEV_OK))
        goto nomem;
    }
    cursor_done(b, c, (i || c->cursor_id) && !text ? CBEV_EINVAL : CBEV_OK);
    cJSON_free(text);
    text = NULL;
  }
  if (c->state_unsaved) {
    text = cb2m_state_format(&c->state);
    if (!text || cb2m_state_file_name(file, sizeof file, c->cfg->name) != CBEV_OK ||
        cb2m_writer_add(b->writer, file, text, strlen(text)) != CBEV_OK)
      goto nomem;
    c->state_unsaved = 0;
  }
  goto out;
nomem:
  LOG(b, CBEV_LOG_ERROR, "%s: out of memory while saving; stopping", c->cfg->name);
  rc = CBEV_ENOMEM;
out:
  cJSON_free(text);
  free(i);
  return rc;
}

int bridge_save_due(bridge *b) {
  int rc = writer_outcome(b);

  if (rc != CBEV_OK || cb2m_writer_busy(b->writer))
    return rc; /* the dues stay for the next round */
  for (size_t i = 0; i < b->n; i++)
    if (hand_over(b, &b->bcs[i]) != CBEV_OK)
      rc = CBEV_ENOMEM;
  cb2m_writer_submit(b->writer);
  return rc;
}

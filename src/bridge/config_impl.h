/*
 * config_impl.h: what the parts of cb2mqtt's settings share, private to
 * src/bridge/config_*.c. The public interface is config.h.
 *
 * The parts, one job each:
 *   config_keys.c    the table of keys, their conversion and their checks;
 *   config_load.c    cb2m_config_load(): collects every source as text,
 *                    converts, resolves broadcasters, frees;
 *   config_sources.c the sources: the INI file, the environment, secret
 *                    files (and their re-read);
 *   config_out.c     --print-config, --help, the example INI, info JSON.
 *
 * A reload calls cb2m_config_load() again: the same loading and
 * validation as at start, no second copy.
 *
 * Return convention (README): CBEV_OK or a CBEV_* code, as everywhere in
 * src/bridge; the loader's failures are CBEV_EINVAL from fail() (the
 * message holds the cause, out of memory included). Lookups return a
 * pointer (NULL: none) or an index (-1: none). The one exception is
 * inih's handler in config_sources.c, which answers inih in its own terms
 * (nonzero: go on).
 */
#ifndef CB2M_CONFIG_IMPL_H
#define CB2M_CONFIG_IMPL_H

#include <stddef.h>

#include "config.h"
#include "topics.h"

#define DEFAULT_CONFIG_FILE "/etc/cb2mqtt/cb2mqtt.ini"
#define ENV_PREFIX "CB2MQTT_"
#define ENV_NAME_MAX 128 /* CB2MQTT_BROADCASTER_<64 bytes>_TOKEN_FILE fits */
#define SECTION_MAX (12 + CB2M_NAME_MAX) /* "broadcaster:" + name */

/* ---- the table ---------------------------------------------------------- */

typedef enum ktype {
  T_STRING, /* char * */
  T_BOOL,   /* int 0/1: true/false/yes/no/on/off/1/0 */
  T_INT,    /* int within [min, max] */
  T_DOUBLE, /* double within [min, max] (min exclusive with F_MIN_EXCL) */
  T_ENUM,   /* char * holding one of choices ("a|b|c"); index at aux */
            /* (T_INT with choices: one of those numbers, e.g. "5|311") */
  T_LIST,   /* char *: "all" or a comma list of event types; mask at aux */
  T_RATE,   /* char * "N/T"; unsigned N at aux, double T at aux2 */
  T_URL     /* char *: a URL, parsed by the key's check */
} ktype;

#define F_SECRET 1u     /* masked in output, absent from info; has <key>_file */
#define F_EMPTY_NULL 2u /* an empty value means unset: stored as NULL */
#define F_MIN_EXCL 4u   /* T_DOUBLE: the value must be above min */
#define F_NOT_EMPTY 8u  /* an empty value is an error */
#define NO_AUX SIZE_MAX

/* A key's check: returns CBEV_OK, or CBEV_EINVAL / CBEV_ENOMEM with the
 * reason in why. */
typedef int (*check_fn)(cb2m_config *cfg, char *why, size_t whylen);

typedef struct key_def {
  const char *section, *key;
  ktype type;
  const char *def;
  double min, max;
  unsigned flags;
  size_t off, aux, aux2; /* into cb2m_config; aux/aux2 NO_AUX when unused */
  const char *choices;   /* T_ENUM: "a|b|c" */
  const char *bad;       /* reason when the value does not parse or is out of bounds; NULL: generic */
  check_fn check;        /* after every key is converted; NULL: none */
  const char *help;
} key_def;

/* The table (config_keys.c). Order matters twice: it is the order of
 * --help, --print-config and the example, and checks may rely on keys
 * above them (prefix vs base_topic). */
extern const key_def cb2m_config_keys[];
extern const size_t cb2m_config_nkeys;
#define KEYS cb2m_config_keys
#define NKEYS cb2m_config_nkeys

extern const char *const cb2m_config_sections[];
extern const size_t cb2m_config_nsections;
#define SECTIONS cb2m_config_sections
#define NSECTIONS cb2m_config_nsections

/* The four ways to give a broadcaster's secret; exactly one per layer. */
extern const char *const cb2m_config_bc_fields[];
#define BC_FIELDS cb2m_config_bc_fields
enum { BF_TOKEN, BF_TOKEN_FILE, BF_URL, BF_URL_FILE, BF_COUNT };

#define FIELD(cfg, off, type) (*(type *)(void *)((char *)(cfg) + (off)))
#define CFIELD(cfg, off, type) (*(const type *)(const void *)((const char *)(cfg) + (off)))

/* Converts value v of key i into cfg by the key's type. Returns CBEV_OK,
 * or CBEV_EINVAL / CBEV_ENOMEM with the reason in why (never the value of
 * a secret). */
int cb2m_config_convert_key(cb2m_config *cfg, size_t i, const char *v, char *why, size_t whylen);

/* ---- the loader's collected text --------------------------------------- */

/* Text is collected at the layers CB2M_FROM_FILE < CB2M_FROM_ENV <
 * CB2M_FROM_FLAG (config.h); CB2M_FROM_DEFAULT means not given. */
typedef struct raw_value {
  char *text;    /* the value; for via_file, the path of the secret */
  int layer;     /* cb2m_config_layer; CB2M_FROM_DEFAULT: not given */
  int via_file;  /* <key>_file / ..._FILE */
  unsigned line; /* CB2M_FROM_FILE */
} raw_value;

typedef struct bc_raw {
  char *name;
  int layer;      /* of the source below; CB2M_FROM_DEFAULT when none was given */
  int field;      /* BF_*, -1 when none */
  char *value;    /* a secret, or the path of one */
  unsigned line;  /* CB2M_FROM_FILE: the line of the source */
  char origin[160]; /* for --print-config, e.g. "env CB_TOKEN_FILE" */
} bc_raw;

typedef struct loader {
  raw_value val[CB2M_CONFIG_KEYS_MAX]; /* per key of the table */
  bc_raw *bcs;
  size_t n_bcs;
  char *err;
  size_t errlen;
  int failed;
  unsigned fail_line; /* the line of a file error, 0 otherwise */
  /* INI reading state. */
  const char *file;
  const char *pos, *end;
  unsigned line;
  char section[SECTION_MAX + 1];
  int section_known; /* 0: before the first section header */
} loader;

/* config_load.c: the loader's primitives. Each returns CBEV_OK, or
 * CBEV_EINVAL after recording the error with fail() (the first error
 * only); fail() itself returns CBEV_EINVAL. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
int cb2m_config_fail(loader *ld, const char *fmt, ...);
#define fail cb2m_config_fail
int cb2m_config_find_key(const char *section, const char *key); /* -1: unknown */
#define find_key cb2m_config_find_key
int cb2m_config_set_key(loader *ld, size_t i, const char *v, int layer, int via_file,
                        const char *name);
#define set_key cb2m_config_set_key
bc_raw *cb2m_config_find_bc(loader *ld, const char *name, int create, const char *where);
#define find_bc cb2m_config_find_bc
int cb2m_config_set_bc(loader *ld, bc_raw *b, int field, const char *v, int layer,
                       const char *origin);
#define set_bc cb2m_config_set_bc
#define free_secret cb2m_config_secret_free

/* config_sources.c: the sources. */
/* Reads the INI file at path into ld; a missing file is an error only
 * when must_exist. CBEV_OK or CBEV_EINVAL (after fail()). */
int cb2m_config_load_file(loader *ld, const char *path, int must_exist);
/* Reads CB2MQTT_* and the CB_* shortcuts from envp into ld. CBEV_OK or
 * CBEV_EINVAL (after fail()). */
int cb2m_config_load_env(loader *ld, char **envp);
/* The value of name in envp, NULL when absent. */
const char *cb2m_config_env_get(char **envp, const char *name);
/* Reads the secret file at path for ld (cbev_read_secret_file()'s rules);
 * what names the key in errors. Returns the secret, a malloc'd copy
 * (free_secret() it), or NULL after fail(). */
char *cb2m_config_read_secret(loader *ld, const char *what, const char *path);
/* The environment name of a key: CB2MQTT_<A>_<B><suffix>, upper case. */
void cb2m_config_env_name(char *buf, size_t size, const char *a, const char *b, const char *suffix);
#define env_name cb2m_config_env_name
#define load_file cb2m_config_load_file
#define load_env cb2m_config_load_env
#define env_get cb2m_config_env_get
#define read_secret cb2m_config_read_secret

#endif

/*
 * Schema-directed scan of JSON prediction and label records straight into column buffers.
 *
 * Why: on the hot path every JSON library creates a Python object per value (a float, a key,
 * a dict) and then copies them into numpy columns; at 50 features that is most of the agent's
 * CPU. This scanner knows each model's feature names, so it parses a record in one pass and
 * writes numbers into float64 buffers that numpy owns, and only makes Python objects for the
 * strings that have to be strings (ids, categories; repeated categories come from a cache).
 *
 * It is an accelerator, never the judge: a record it does not fully understand (escapes in a
 * string, a missing or unknown feature key, a duplicate key, a wrong type, an unknown model,
 * a number it cannot convert exactly, anything malformed) gets status 0 and the caller decodes
 * it with the exact Python route, which names the problem. A record with status 1 carries
 * exactly the values the Python route would produce for it.
 *
 * Numbers are converted with correct rounding: Clinger's fast path, then exact 128-bit integer
 * arithmetic for up to 19 significant digits and decimal exponents in [-19, 19] (which covers
 * the shortest round-trip form of doubles written by JSON encoders for ordinary magnitudes),
 * then CPython's own correctly rounded PyOS_string_to_double.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 64
#define CACHE_SLOTS 128
#define CACHE_PROBE 8
#define CACHE_MAX_LEN 96

/* ---------- small string cache (categories repeat) ---------- */

typedef struct {
    uint32_t hash;
    Py_ssize_t len;
    char *bytes;
    PyObject *str;
} CacheEntry;

typedef struct {
    CacheEntry slots[CACHE_SLOTS];
} StrCache;

static uint32_t fnv1a(const char *s, Py_ssize_t n) {
    uint32_t h = 2166136261u;
    for (Py_ssize_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static void cache_clear(StrCache *c) {
    for (int i = 0; i < CACHE_SLOTS; i++) {
        if (c->slots[i].bytes) {
            PyMem_Free(c->slots[i].bytes);
            Py_XDECREF(c->slots[i].str);
        }
        c->slots[i].bytes = NULL;
        c->slots[i].str = NULL;
    }
}

/* A new reference to the str of UTF-8 bytes s[0:n] (no escapes), or NULL with no Python error
 * set when the bytes are not valid UTF-8. */
static PyObject *make_str(const char *s, Py_ssize_t n) {
    int ascii = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] >= 0x80) {
            ascii = 0;
            break;
        }
    }
    if (ascii) {
        PyObject *u = PyUnicode_New(n, 127);
        if (u == NULL) return NULL;
        memcpy(PyUnicode_DATA(u), s, (size_t)n);
        return u;
    }
    PyObject *u = PyUnicode_DecodeUTF8(s, n, "strict");
    if (u == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) PyErr_Clear();
    return u;
}

static PyObject *cached_str(StrCache *c, const char *s, Py_ssize_t n) {
    if (n > CACHE_MAX_LEN) return make_str(s, n);
    uint32_t h = fnv1a(s, n);
    int free_slot = -1;
    for (int k = 0; k < CACHE_PROBE; k++) {
        int i = (int)((h + (uint32_t)k) & (CACHE_SLOTS - 1));
        CacheEntry *e = &c->slots[i];
        if (e->bytes == NULL) {
            if (free_slot < 0) free_slot = i;
            break;
        }
        if (e->hash == h && e->len == n && memcmp(e->bytes, s, (size_t)n) == 0) {
            Py_INCREF(e->str);
            return e->str;
        }
    }
    PyObject *u = make_str(s, n);
    if (u == NULL || free_slot < 0) return u;
    char *copy = PyMem_Malloc((size_t)n + 1);
    if (copy == NULL) return u;  /* not cached; still a valid result */
    memcpy(copy, s, (size_t)n);
    CacheEntry *e = &c->slots[free_slot];
    e->hash = h;
    e->len = n;
    e->bytes = copy;
    Py_INCREF(u);
    e->str = u;
    return u;
}

/* ---------- JSON lexing ---------- */

typedef struct {
    const char *p;
    const char *end;
} Cur;

static inline void skip_ws(Cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t')) c->p++;
}

/* A string with no escapes: on success *s, *n hold its raw bytes (between the quotes).
 * Returns 0 ok, -1 otherwise (escape, control character, unterminated: the record punts). */
static inline int lex_string(Cur *c, const char **s, Py_ssize_t *n) {
    if (c->p >= c->end || *c->p != '"') return -1;
    const char *start = ++c->p;
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            *s = start;
            *n = c->p - start;
            c->p++;
            return 0;
        }
        if (ch == '\\' || ch < 0x20) return -1;
        c->p++;
    }
    return -1;
}

static const double POW10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
static const uint64_t POW10U[] = {1ULL,
                                  10ULL,
                                  100ULL,
                                  1000ULL,
                                  10000ULL,
                                  100000ULL,
                                  1000000ULL,
                                  10000000ULL,
                                  100000000ULL,
                                  1000000000ULL,
                                  10000000000ULL,
                                  100000000000ULL,
                                  1000000000000ULL,
                                  10000000000000ULL,
                                  100000000000000ULL,
                                  1000000000000000ULL,
                                  10000000000000000ULL,
                                  100000000000000000ULL,
                                  1000000000000000000ULL,
                                  10000000000000000000ULL};

typedef unsigned __int128 u128;

static inline int bitlen64(uint64_t x) { return x ? 64 - __builtin_clzll(x) : 0; }

static inline int bitlen128(u128 x) {
    uint64_t hi = (uint64_t)(x >> 64);
    return hi ? 64 + bitlen64(hi) : bitlen64((uint64_t)x);
}

/* Round q * 2^-scale to a double, to nearest even; `sticky` says a nonzero remainder was cut
 * below q. q > 0. */
static double round_u128(u128 q, int scale, int sticky) {
    int bits = bitlen128(q);
    if (bits <= 53) return ldexp((double)(uint64_t)q, -scale);  /* exact (callers with a remainder give >= 55 bits) */
    int sh = bits - 53;
    uint64_t top = (uint64_t)(q >> sh);
    u128 rem = q & (((u128)1 << sh) - 1);
    u128 half = (u128)1 << (sh - 1);
    if (rem > half || (rem == half && (sticky || (top & 1)))) top++;
    return ldexp((double)top, sh - scale);
}

/* A JSON number at c->p, validated against the JSON grammar. Returns 0 and the correctly
 * rounded double in *out, or -1 (malformed, or out of double range: the record punts).
 * *is_int tells an integer token (no fraction, no exponent). */
#define MAX_NUMBER_TOKEN 128 /* characters; agent.decode.LONG_NUMBER matches the same runs */

static int lex_number(Cur *c, double *out, int *is_int) {
    const char *start = c->p, *p = c->p, *end = c->end;
    int neg = 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end) return -1;
    uint64_t m = 0;
    int sig = 0;       /* significant digits taken into m */
    int dropped = 0;   /* integer-part digits beyond 19 (scale m up) */
    int many = 0;      /* significant digits beyond what m holds */
    if (*p == '0') {
        p++;
        if (p < end && *p >= '0' && *p <= '9') return -1;  /* leading zero */
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') {
            if (sig < 19) {
                m = m * 10 + (uint64_t)(*p - '0');
                sig++;
            } else {
                dropped++;
                many = 1;
            }
            p++;
        }
    } else {
        return -1;
    }
    int frac = 0;  /* fraction digits taken into m */
    *is_int = 1;
    if (p < end && *p == '.') {
        *is_int = 0;
        p++;
        if (p >= end || *p < '0' || *p > '9') return -1;
        while (p < end && *p >= '0' && *p <= '9') {
            if (sig < 19) {
                if (m == 0 && *p == '0') {
                    frac++;  /* leading zeros of the fraction are not significant */
                } else {
                    m = m * 10 + (uint64_t)(*p - '0');
                    sig++;
                    frac++;
                }
            } else {
                many = 1;
            }
            p++;
        }
    }
    long exp10 = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        *is_int = 0;
        p++;
        int eneg = 0;
        if (p < end && (*p == '+' || *p == '-')) {
            eneg = *p == '-';
            p++;
        }
        if (p >= end || *p < '0' || *p > '9') return -1;
        while (p < end && *p >= '0' && *p <= '9') {
            if (exp10 < 100000) exp10 = exp10 * 10 + (*p - '0');
            p++;
        }
        if (eneg) exp10 = -exp10;
    }
    /* A long token is left to the exact route, which converts it with Python's rules: the
     * leading-zero count and the exponent saturate differently, so scaling them here could
     * mis-round (0. + 99,999 zeros + 1e1000000 is +inf, not 1.0). */
    if (p - start >= MAX_NUMBER_TOKEN) return -1;
    c->p = p;
    long e = exp10 - frac + dropped;
    double v;
    if (m == 0 && !many) {
        /* msgspec reads an integer token as an int, so "-0" is 0.0; "-0.0" keeps its sign */
        v = (*is_int || !neg) ? 0.0 : -0.0;
        *out = v;
        return 0;
    }
    if (!many && m <= (1ULL << 53) && e >= -22 && e <= 22) {
        v = e >= 0 ? (double)m * POW10[e] : (double)m / POW10[-e];
    } else if (!many && e >= 0 && e <= 19) {
        v = round_u128((u128)m * POW10U[e], 0, 0);
    } else if (!many && e < 0 && e >= -19) {
        uint64_t d = POW10U[-e];
        int s = 54 + bitlen64(d) - bitlen64(m) + 1;
        if (s < 0) s = 0;
        u128 num = (u128)m << s;
        u128 q = num / d, r = num % d;
        v = round_u128(q, s, r != 0);
    } else {
        /* rare: many digits or a large exponent. CPython's parser is correctly rounded. */
        char buf[128];
        Py_ssize_t len = p - start;
        if (len >= (Py_ssize_t)sizeof(buf)) return -1;
        memcpy(buf, start, (size_t)len);
        buf[len] = '\0';
        char *endp = NULL;
        v = PyOS_string_to_double(buf, &endp, NULL);
        if (v == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return -1;
        }
        if (endp != buf + len || !isfinite(v)) return -1;
        *out = v;
        return 0;
    }
    if (!isfinite(v)) return -1;
    *out = neg ? -v : v;
    return 0;
}

static inline int lex_literal(Cur *c, const char *lit, int n) {
    if (c->end - c->p < n || memcmp(c->p, lit, (size_t)n) != 0) return -1;
    c->p += n;
    return 0;
}

/* A skipped string must still be valid UTF-8 (the exact route rejects the record otherwise). */
static int valid_utf8(const char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] >= 0x80) {
            PyObject *u = make_str(s, n);
            if (u == NULL) {
                PyErr_Clear();
                return 0;
            }
            Py_DECREF(u);
            return 1;
        }
    }
    return 1;
}

/* Skip any JSON value, validating it; strings with escapes punt (the exact route checks those). */
static int skip_value(Cur *c, int depth) {
    if (depth > MAX_DEPTH) return -1;
    skip_ws(c);
    if (c->p >= c->end) return -1;
    char ch = *c->p;
    if (ch == '"') {
        const char *s;
        Py_ssize_t n;
        if (lex_string(c, &s, &n) < 0 || !valid_utf8(s, n)) return -1;
        return 0;
    }
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        c->p++;
        skip_ws(c);
        if (c->p < c->end && *c->p == close) {
            c->p++;
            return 0;
        }
        for (;;) {
            if (ch == '{') {
                const char *s;
                Py_ssize_t n;
                skip_ws(c);
                if (lex_string(c, &s, &n) < 0 || !valid_utf8(s, n)) return -1;
                skip_ws(c);
                if (c->p >= c->end || *c->p != ':') return -1;
                c->p++;
            }
            if (skip_value(c, depth + 1) < 0) return -1;
            skip_ws(c);
            if (c->p >= c->end) return -1;
            if (*c->p == ',') {
                c->p++;
                continue;
            }
            if (*c->p == close) {
                c->p++;
                return 0;
            }
            return -1;
        }
    }
    if (ch == 't') return lex_literal(c, "true", 4);
    if (ch == 'f') return lex_literal(c, "false", 5);
    if (ch == 'n') return lex_literal(c, "null", 4);
    double v;
    int is_int;
    return lex_number(c, &v, &is_int);
}

/* ---------- per-model feature layout ---------- */

enum { K_NUM = 0, K_CAT = 1, K_EXTRA = 2 };

typedef struct {
    char *key;
    Py_ssize_t len;
    int kind;
    int col;  /* index within its kind (numeric column, or object column: categorical then extra) */
} Key;

typedef struct {
    char *name;
    Py_ssize_t name_len;
    Key *keys;
    int n_keys, n_num, n_cat, n_extra;
    int *table;  /* open addressing over keys, -1 empty */
    int table_size;
    uint32_t *stamp;  /* per key: the record stamp it was last seen in (duplicates) */
    StrCache *caches; /* per object column */
} Model;

typedef struct {
    PyObject_HEAD Model *models;
    int n_models;
    uint32_t stamp;
} Scanner;

static void model_free(Model *m) {
    if (m->keys) {
        for (int i = 0; i < m->n_keys; i++) PyMem_Free(m->keys[i].key);
    }
    if (m->caches) {
        for (int i = 0; i < m->n_cat + m->n_extra; i++) cache_clear(&m->caches[i]);
    }
    PyMem_Free(m->keys);
    PyMem_Free(m->caches);
    PyMem_Free(m->table);
    PyMem_Free(m->stamp);
    PyMem_Free(m->name);
}

static void models_free(Scanner *self) {
    if (self->models) {
        for (int i = 0; i < self->n_models; i++) model_free(&self->models[i]);
        PyMem_Free(self->models);
    }
    self->models = NULL;
    self->n_models = 0;
}

static void Scanner_dealloc(Scanner *self) {
    models_free(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static char *utf8_copy(PyObject *s, Py_ssize_t *len) {
    if (!PyUnicode_Check(s)) {
        PyErr_SetString(PyExc_TypeError, "model and feature names must be str");
        return NULL;
    }
    const char *u = PyUnicode_AsUTF8AndSize(s, len);
    if (u == NULL) return NULL;
    char *copy = PyMem_Malloc((size_t)*len + 1);
    if (copy == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(copy, u, (size_t)*len + 1);
    return copy;
}

static int model_find(const Model *m, const char *s, Py_ssize_t n) {
    uint32_t h = fnv1a(s, n);
    for (int k = 0; k < m->table_size; k++) {
        int slot = m->table[(h + (uint32_t)k) & (uint32_t)(m->table_size - 1)];
        if (slot < 0) return -1;
        const Key *key = &m->keys[slot];
        if (key->len == n && memcmp(key->key, s, (size_t)n) == 0) return slot;
    }
    return -1;
}

static int model_init(Model *m, PyObject *spec) {
    PyObject *name, *lists[3];
    if (!PyArg_ParseTuple(spec, "UOOO", &name, &lists[0], &lists[1], &lists[2])) return -1;
    if ((m->name = utf8_copy(name, &m->name_len)) == NULL) return -1;
    Py_ssize_t sizes[3];
    for (int k = 0; k < 3; k++) {
        if (!PyTuple_Check(lists[k])) {
            PyErr_SetString(PyExc_TypeError, "feature name lists must be tuples");
            return -1;
        }
        sizes[k] = PyTuple_GET_SIZE(lists[k]);
    }
    m->n_num = (int)sizes[0];
    m->n_cat = (int)sizes[1];
    m->n_extra = (int)sizes[2];
    m->n_keys = m->n_num + m->n_cat + m->n_extra;
    m->keys = PyMem_Calloc((size_t)m->n_keys + 1, sizeof(Key));
    m->stamp = PyMem_Calloc((size_t)m->n_keys + 1, sizeof(uint32_t));
    m->caches = PyMem_Calloc((size_t)(m->n_cat + m->n_extra) + 1, sizeof(StrCache));
    m->table_size = 8;
    while (m->table_size < 2 * m->n_keys) m->table_size *= 2;
    m->table = PyMem_Malloc(sizeof(int) * (size_t)m->table_size);
    if (!m->keys || !m->stamp || !m->caches || !m->table) {
        PyErr_NoMemory();
        return -1;
    }
    for (int i = 0; i < m->table_size; i++) m->table[i] = -1;
    int idx = 0;
    for (int k = 0; k < 3; k++) {
        for (Py_ssize_t j = 0; j < sizes[k]; j++, idx++) {
            Key *key = &m->keys[idx];
            if ((key->key = utf8_copy(PyTuple_GET_ITEM(lists[k], j), &key->len)) == NULL) return -1;
            key->kind = k;
            key->col = k == K_NUM ? (int)j : k == K_CAT ? (int)j : m->n_cat + (int)j;
            if (model_find(m, key->key, key->len) >= 0) {
                PyErr_Format(PyExc_ValueError, "duplicate feature name %R", PyTuple_GET_ITEM(lists[k], j));
                return -1;
            }
            uint32_t h = fnv1a(key->key, key->len);
            for (int p = 0;; p++) {
                int slot = (int)((h + (uint32_t)p) & (uint32_t)(m->table_size - 1));
                if (m->table[slot] < 0) {
                    m->table[slot] = idx;
                    break;
                }
            }
        }
    }
    return 0;
}

static int Scanner_init(Scanner *self, PyObject *args, PyObject *kwds) {
    PyObject *specs;
    static char *kwlist[] = {"models", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!", kwlist, &PyTuple_Type, &specs)) return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(specs);
    if (n < 1 || n > 1 << 20) {
        PyErr_SetString(PyExc_ValueError, "Scanner needs at least one model");
        return -1;
    }
    /* __init__ may run again on the same object: the old models go first, and a failed
     * init leaves no model at all (scan() then refuses), never a half-built one. */
    models_free(self);
    self->models = PyMem_Calloc((size_t)n, sizeof(Model));
    if (self->models == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->n_models = (int)n;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *spec = PyTuple_GET_ITEM(specs, i);
        if (!PyTuple_Check(spec)) {
            PyErr_SetString(PyExc_TypeError, "each model spec is (name, numeric, categorical, extra)");
            models_free(self);
            return -1;
        }
        if (model_init(&self->models[i], spec) < 0) {
            models_free(self);
            return -1;
        }
    }
    return 0;
}

/* ---------- record scanning ---------- */

typedef struct {
    Py_ssize_t n;
    uint8_t *status;
    int32_t *model;
    double *ts;
    double *value;
    double *score;
    double **numeric;     /* per model: column-major block, column j at [j * n] */
    PyObject **objects;   /* per model: list of object columns (lists of length n) */
    PyObject *ids;        /* list of length n */
    PyObject *ts_str;     /* list of length n, made on the first string timestamp, or NULL */
} Out;

static int set_list_item(PyObject *list, Py_ssize_t i, PyObject *v) {
    PyObject *old = PyList_GET_ITEM(list, i);
    PyList_SET_ITEM(list, i, v);
    Py_XDECREF(old);
    return 0;
}

/* A scalar JSON value for an extra (non-feature) key, as msgspec's Any would decode it. */
static PyObject *extra_value(Cur *c, StrCache *cache) {
    char ch = *c->p;
    if (ch == '"') {
        const char *s;
        Py_ssize_t n;
        if (lex_string(c, &s, &n) < 0) return NULL;
        return cached_str(cache, s, n);
    }
    if (ch == 'n') return lex_literal(c, "null", 4) < 0 ? NULL : Py_NewRef(Py_None);
    if (ch == 't') return lex_literal(c, "true", 4) < 0 ? NULL : Py_NewRef(Py_True);
    if (ch == 'f') return lex_literal(c, "false", 5) < 0 ? NULL : Py_NewRef(Py_False);
    const char *start = c->p;
    double v;
    int is_int;
    if (lex_number(c, &v, &is_int) < 0) return NULL;
    if (!is_int) return PyFloat_FromDouble(v);
    Py_ssize_t len = c->p - start;
    if (len > 18) return NULL;  /* may not fit int64: the exact route decides */
    long long x = 0;
    const char *p = start;
    int neg = *p == '-';
    if (neg) p++;
    for (; p < c->p; p++) x = x * 10 + (*p - '0');
    return PyLong_FromLongLong(neg ? -x : x);
}

/* The features object of record i into model m's columns. 0 ok, -1 punt. */
static int scan_features(Scanner *self, Cur *c, Model *m, Out *o, Py_ssize_t i) {
    skip_ws(c);
    if (c->p >= c->end || *c->p != '{') return -1;
    c->p++;
    uint32_t stamp = ++self->stamp;
    if (stamp == 0) {  /* wrapped: forget every stamp */
        for (int k = 0; k < self->n_models; k++) memset(self->models[k].stamp, 0, sizeof(uint32_t) * (size_t)self->models[k].n_keys);
        stamp = self->stamp = 1;
    }
    int required = 0, guess = 0;
    double *block = o->numeric[m - self->models];
    PyObject *objs = o->objects[m - self->models];
    skip_ws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return m->n_num + m->n_cat == 0 ? 0 : -1;
    }
    for (;;) {
        const char *s;
        Py_ssize_t n;
        skip_ws(c);
        if (lex_string(c, &s, &n) < 0) return -1;
        int idx;
        if (guess < m->n_keys && m->keys[guess].len == n && memcmp(m->keys[guess].key, s, (size_t)n) == 0)
            idx = guess;  /* producers usually write keys in one order */
        else if ((idx = model_find(m, s, n)) < 0)
            return -1;  /* unexpected key: the exact route counts it */
        if (m->stamp[idx] == stamp) return -1;  /* duplicate key */
        m->stamp[idx] = stamp;
        guess = idx + 1;
        skip_ws(c);
        if (c->p >= c->end || *c->p != ':') return -1;
        c->p++;
        skip_ws(c);
        if (c->p >= c->end) return -1;
        const Key *key = &m->keys[idx];
        if (key->kind == K_NUM) {
            double v;
            int is_int;
            if (*c->p == 'n') {
                if (lex_literal(c, "null", 4) < 0) return -1;
                v = NAN;
            } else if (lex_number(c, &v, &is_int) < 0) {
                return -1;
            }
            block[(Py_ssize_t)key->col * o->n + i] = v;
            required++;
        } else {
            PyObject *v;
            StrCache *cache = &m->caches[key->col];
            if (key->kind == K_CAT) {
                if (*c->p == '"') {
                    const char *cs;
                    Py_ssize_t cn;
                    if (lex_string(c, &cs, &cn) < 0) return -1;
                    v = cached_str(cache, cs, cn);
                } else if (*c->p == 'n') {
                    v = lex_literal(c, "null", 4) < 0 ? NULL : Py_NewRef(Py_None);
                } else {
                    return -1;  /* a number or bool as a category: the exact route stringifies it */
                }
                required++;
            } else {
                v = extra_value(c, cache);
            }
            if (v == NULL) {
                if (PyErr_Occurred()) return -2;
                return -1;
            }
            set_list_item(PyList_GET_ITEM(objs, key->col), i, v);
        }
        skip_ws(c);
        if (c->p >= c->end) return -1;
        if (*c->p == ',') {
            c->p++;
            continue;
        }
        if (*c->p == '}') {
            c->p++;
            break;
        }
        return -1;
    }
    if (required != m->n_num + m->n_cat) return -1;  /* a feature is missing */
    /* extras not present read as None: clear what an earlier record left in this row */
    for (int k = m->n_num + m->n_cat; k < m->n_keys; k++) {
        if (m->stamp[k] != stamp) set_list_item(PyList_GET_ITEM(objs, m->keys[k].col), i, Py_NewRef(Py_None));
    }
    return 0;
}

enum { F_ID = 1, F_MODEL = 2, F_TS = 4, F_FEATURES = 8, F_VALUE = 16, F_SCORE = 32, F_SCORES = 64 };

static int field_of(const char *s, Py_ssize_t n, int labels) {
#define IS(lit) (n == (Py_ssize_t)sizeof(lit) - 1 && memcmp(s, lit, sizeof(lit) - 1) == 0)
    if (IS("prediction_id")) return F_ID;
    if (IS("model")) return F_MODEL;
    if (IS("timestamp")) return F_TS;
    if (labels) return IS("label") ? F_VALUE : 0;
    if (IS("features")) return F_FEATURES;
    if (IS("prediction")) return F_VALUE;
    if (IS("score")) return F_SCORE;
    if (IS("scores")) return F_SCORES;
    return 0;
#undef IS
}

static Model *find_model(Scanner *self, const char *s, Py_ssize_t n) {
    for (int k = 0; k < self->n_models; k++) {
        Model *m = &self->models[k];
        if (m->name_len == n && memcmp(m->name, s, (size_t)n) == 0) return m;
    }
    return NULL;
}

/* One record. 1: scanned, 0: punt, -1: Python error (memory). */
static int scan_record(Scanner *self, const char *buf, Py_ssize_t len, Py_ssize_t i, Out *o, int labels) {
    Cur c = {buf, buf + len};
    int seen = 0;
    Model *m = NULL;
    const char *id = NULL, *ts_s = NULL;
    Py_ssize_t id_n = 0, ts_n = 0;
    double ts = NAN, value = 0.0, score = NAN;
    Model *assumed = NULL;  /* the model features were read for, when they came before "model" */
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{') return 0;
    c.p++;
    skip_ws(&c);
    if (c.p < c.end && *c.p == '}') return 0;
    for (;;) {
        const char *s;
        Py_ssize_t n;
        skip_ws(&c);
        if (lex_string(&c, &s, &n) < 0) return 0;
        int f = field_of(s, n, labels);
        if (f == 0 && !valid_utf8(s, n)) return 0; /* a skipped key is still JSON: valid UTF-8 */
        skip_ws(&c);
        if (c.p >= c.end || *c.p != ':') return 0;
        c.p++;
        skip_ws(&c);
        if (c.p >= c.end) return 0;
        if (f && (seen & f)) return 0;  /* duplicate field */
        seen |= f;
        switch (f) {
            case F_ID:
                if (lex_string(&c, &id, &id_n) < 0 || id_n == 0) return 0;
                break;
            case F_MODEL: {
                const char *ms;
                Py_ssize_t mn;
                if (lex_string(&c, &ms, &mn) < 0) return 0;
                if ((m = find_model(self, ms, mn)) == NULL) return 0;
                if (assumed != NULL && assumed != m) return 0;
                break;
            }
            case F_TS:
                if (*c.p == '"') {
                    if (lex_string(&c, &ts_s, &ts_n) < 0) return 0;
                } else if (*c.p == 'n') {
                    if (lex_literal(&c, "null", 4) < 0) return 0;
                } else {
                    int is_int;
                    if (lex_number(&c, &ts, &is_int) < 0) return 0;
                }
                break;
            case F_FEATURES: {
                Model *target = m;
                if (target == NULL) {
                    if (self->n_models != 1) return 0;
                    target = assumed = &self->models[0];
                }
                int r = scan_features(self, &c, target, o, i);
                if (r == -2) return -1;
                if (r < 0) return 0;
                break;
            }
            case F_VALUE:
                if (*c.p == 't') {
                    if (lex_literal(&c, "true", 4) < 0) return 0;
                    value = 1.0;
                } else if (*c.p == 'f') {
                    if (lex_literal(&c, "false", 5) < 0) return 0;
                    value = 0.0;
                } else {
                    int is_int;
                    if (lex_number(&c, &value, &is_int) < 0) return 0;
                    if (is_int && fabs(value) >= 9007199254740992.0) return 0;  /* 2^53 on: the exact route keeps ints */
                }
                break;
            case F_SCORE:
                if (*c.p == 'n') {
                    if (lex_literal(&c, "null", 4) < 0) return 0;
                } else {
                    int is_int;
                    if (lex_number(&c, &score, &is_int) < 0) return 0;
                }
                break;
            case F_SCORES:
                if (lex_literal(&c, "null", 4) < 0) return 0;  /* class probabilities: exact route */
                break;
            default:
                if (skip_value(&c, 1) < 0) return 0;
        }
        skip_ws(&c);
        if (c.p >= c.end) return 0;
        if (*c.p == ',') {
            c.p++;
            continue;
        }
        if (*c.p == '}') {
            c.p++;
            break;
        }
        return 0;
    }
    skip_ws(&c);
    if (c.p != c.end) return 0;  /* trailing bytes */
    int need = labels ? (F_ID | F_MODEL | F_VALUE) : (F_ID | F_MODEL | F_FEATURES | F_VALUE);
    if ((seen & need) != need || m == NULL) return 0;
    PyObject *pid = make_str(id, id_n);
    if (pid == NULL) return PyErr_Occurred() ? -1 : 0;
    set_list_item(o->ids, i, pid);
    if (ts_s != NULL) {
        PyObject *t = make_str(ts_s, ts_n);
        if (t == NULL) return PyErr_Occurred() ? -1 : 0;
        if (o->ts_str == NULL) {
            o->ts_str = PyList_New(o->n);
            if (o->ts_str == NULL) {
                Py_DECREF(t);
                return -1;
            }
            for (Py_ssize_t k = 0; k < o->n; k++) PyList_SET_ITEM(o->ts_str, k, Py_NewRef(Py_None));
        }
        set_list_item(o->ts_str, i, t);
    }
    o->model[i] = (int32_t)(m - self->models);
    o->ts[i] = ts;
    o->value[i] = value;
    if (o->score) o->score[i] = score;
    return 1;
}

static PyObject *new_none_list(Py_ssize_t n) {
    PyObject *l = PyList_New(n);
    if (l == NULL) return NULL;
    for (Py_ssize_t k = 0; k < n; k++) PyList_SET_ITEM(l, k, Py_NewRef(Py_None));
    return l;
}

static int get_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t need, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (view->len < need) {
        PyErr_Format(PyExc_ValueError, "%s buffer holds %zd bytes, needs %zd", what, view->len, need);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* scan(values, max_bytes, labels, status, model, ts, value, score, numeric)
 *   -> (ids, ts_strings or None, objects per model)
 * status/model/ts/value/score: writable buffers of n uint8 / int32 / float64 (score may be
 * None for labels); numeric: a tuple with one float64 buffer of n_numeric * n per model. */
static PyObject *Scanner_scan(Scanner *self, PyObject *args) {
    PyObject *values, *st_o, *mo_o, *ts_o, *va_o, *sc_o, *num_o;
    Py_ssize_t max_bytes;
    int labels;
    if (!PyArg_ParseTuple(args, "O!npOOOOOO!", &PyList_Type, &values, &max_bytes, &labels, &st_o, &mo_o, &ts_o,
                          &va_o, &sc_o, &PyTuple_Type, &num_o))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(values);
    if (self->models == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner has no models (its __init__ failed or never ran)");
        return NULL;
    }
    if (!labels && PyTuple_GET_SIZE(num_o) != self->n_models) {
        PyErr_SetString(PyExc_ValueError, "numeric needs one buffer per model");
        return NULL;
    }
    Py_buffer bst = {0}, bmo = {0}, bts = {0}, bva = {0}, bsc = {0};
    Py_buffer *bnum = PyMem_Calloc((size_t)self->n_models, sizeof(Py_buffer));
    double **numeric = PyMem_Calloc((size_t)self->n_models, sizeof(double *));
    PyObject **objects = PyMem_Calloc((size_t)self->n_models, sizeof(PyObject *));
    PyObject *ids = NULL, *result = NULL, *objs_tuple = NULL;
    int nb = 0, have_sc = 0;
    Out o = {0};
    if (!bnum || !numeric || !objects) {
        PyErr_NoMemory();
        goto done;
    }
    if (get_buffer(st_o, &bst, n, "status") < 0) goto done;
    if (get_buffer(mo_o, &bmo, n * 4, "model") < 0) goto release1;
    if (get_buffer(ts_o, &bts, n * 8, "ts") < 0) goto release2;
    if (get_buffer(va_o, &bva, n * 8, "value") < 0) goto release3;
    if (sc_o != Py_None) {
        if (get_buffer(sc_o, &bsc, n * 8, "score") < 0) goto release4;
        have_sc = 1;
    }
    for (; !labels && nb < self->n_models; nb++) {
        Model *m = &self->models[nb];
        if (get_buffer(PyTuple_GET_ITEM(num_o, nb), &bnum[nb], (Py_ssize_t)m->n_num * n * 8, "numeric") < 0) goto release5;
        numeric[nb] = bnum[nb].buf;
    }
    objs_tuple = PyTuple_New(self->n_models);
    ids = new_none_list(n);
    if (objs_tuple == NULL || ids == NULL) goto release5;
    for (int k = 0; k < self->n_models; k++) {
        Model *m = &self->models[k];
        PyObject *cols = PyList_New(m->n_cat + m->n_extra);
        if (cols == NULL) goto release5;
        PyTuple_SET_ITEM(objs_tuple, k, cols);
        for (int j = 0; j < m->n_cat + m->n_extra; j++) {
            PyObject *col = new_none_list(labels ? 0 : n);
            if (col == NULL) goto release5;
            PyList_SET_ITEM(cols, j, col);
        }
        objects[k] = cols;
    }
    o.n = n;
    o.status = bst.buf;
    o.model = bmo.buf;
    o.ts = bts.buf;
    o.value = bva.buf;
    o.score = have_sc ? bsc.buf : NULL;
    o.numeric = numeric;
    o.objects = objects;
    o.ids = ids;
    o.ts_str = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyList_GET_ITEM(values, i);
        int r = 0;
        if (PyBytes_CheckExact(v) && PyBytes_GET_SIZE(v) <= max_bytes) {
            r = scan_record(self, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v), i, &o, labels);
            if (r < 0) goto release5;
        }
        o.status[i] = (uint8_t)r;
    }
    result = Py_BuildValue("(OOO)", ids, o.ts_str ? o.ts_str : Py_None, objs_tuple);
release5:
    for (int k = 0; k < nb; k++) PyBuffer_Release(&bnum[k]);
    if (have_sc) PyBuffer_Release(&bsc);
release4:
    PyBuffer_Release(&bva);
release3:
    PyBuffer_Release(&bts);
release2:
    PyBuffer_Release(&bmo);
release1:
    PyBuffer_Release(&bst);
done:
    Py_XDECREF(ids);
    Py_XDECREF(o.ts_str);
    Py_XDECREF(objs_tuple);
    PyMem_Free(bnum);
    PyMem_Free(numeric);
    PyMem_Free(objects);
    return result;
}


static PyObject *parse_number_py(PyObject *mod, PyObject *arg) {
    /* The scanner's number conversion on one token (tests compare it with Python's float()). */
    char *buf;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(arg, &buf, &len) < 0) return NULL;
    Cur c = {buf, buf + len};
    double v;
    int is_int;
    if (lex_number(&c, &v, &is_int) < 0 || c.p != c.end) Py_RETURN_NONE;
    return PyFloat_FromDouble(v);
}

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_VARARGS, "Scan a list of records into the given buffers."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "agent._scan.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Scanner(models): models is a tuple of (name, numeric, categorical, extra) tuples.",
    .tp_methods = Scanner_methods,
    .tp_init = (initproc)Scanner_init,
    .tp_new = PyType_GenericNew,
};

static PyMethodDef module_methods[] = {
    {"parse_number", parse_number_py, METH_O, "A JSON number token as the scanner converts it, or None."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef scanmodule = {PyModuleDef_HEAD_INIT, "agent._scan",
                                        "Schema-directed scan of JSON records into column buffers.", -1,
                                        module_methods};

PyMODINIT_FUNC PyInit__scan(void) {
    if (PyType_Ready(&ScannerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&scanmodule);
    if (m == NULL) return NULL;
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(m, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

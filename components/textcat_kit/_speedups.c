/* Compiled inference kernels of the bag-of-words classifier (optional).
 *
 * textcat_kit.architectures and textcat_kit.pipeline.fitted compute the same results in
 * NumPy; this module does the per-doc work of a batch in one C loop instead of a chain of
 * NumPy calls and Python-level dict updates, which is what a bow pipeline spends most of
 * its time on. Every result equals the NumPy path's to the bit (tests/test_speedups.py):
 * the same hashes (thinc's MurmurHash64A n-grams, MurmurHash3_x86_32 buckets), the same
 * float32 / float64 operations in the same order. The package works without it (the
 * build is optional); TEXTCAT_KIT_NO_SPEEDUPS=1 switches it off at import.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* --- hashes (thinc's) ------------------------------------------------------------------ */

static uint64_t murmur64a(const uint64_t *data, int n_words, uint64_t seed) {
    /* MurmurHash64A (murmurhash.mrmr.hash64, what thinc's ops.ngrams calls) of
     * n_words * 8 bytes: no tail, as n-grams of uint64 keys are whole words. */
    const uint64_t m = 0xc6a4a7935bd1e995ULL;
    const int r = 47;
    uint64_t h = seed ^ ((uint64_t)(n_words * 8) * m);
    for (int i = 0; i < n_words; i++) {
        uint64_t k = data[i];
        k *= m;
        k ^= k >> r;
        k *= m;
        h ^= k;
        h *= m;
    }
    h ^= h >> r;
    h *= m;
    h ^= h >> r;
    return h;
}

static inline uint32_t rotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

static uint32_t murmur3_32_u64(uint64_t key, uint32_t seed) {
    /* MurmurHash3_x86_32 of the 8 little-endian bytes of key (thinc's SparseLinear). */
    const uint32_t c1 = 0xcc9e2d51, c2 = 0x1b873593;
    uint32_t h = seed;
    uint32_t blocks[2] = {(uint32_t)(key & 0xffffffffu), (uint32_t)(key >> 32)};
    for (int i = 0; i < 2; i++) {
        uint32_t k = blocks[i];
        k *= c1;
        k = rotl32(k, 15);
        k *= c2;
        h ^= k;
        h = rotl32(h, 13);
        h = h * 5 + 0xe6546b64;
    }
    h ^= 8;
    h ^= h >> 16;
    h *= 0x85ebca6b;
    h ^= h >> 13;
    h *= 0xc2b2ae35;
    h ^= h >> 16;
    return h;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void sort_u64(uint64_t *a, Py_ssize_t n) {
    if (n > 48) {
        qsort(a, n, sizeof(uint64_t), cmp_u64);
        return;
    }
    for (Py_ssize_t i = 1; i < n; i++) { /* insertion sort: a doc has a few dozen keys */
        uint64_t x = a[i];
        Py_ssize_t j = i;
        for (; j > 0 && a[j - 1] > x; j--) a[j] = a[j - 1];
        a[j] = x;
    }
}

/* --- IDF lookup: an open-addressing hash table over the (hashed, so uniform) keys ----- */

static inline Py_ssize_t slot_of(uint64_t key, uint64_t mask) {
    return (Py_ssize_t)((key ^ (key >> 32)) & mask);
}

/* idf_hash_table(idf_keys, idf, slot_keys, slot_values): fill the table (sizes a power of
 * two, at least twice the keys; slot_values preset to NaN, the empty mark). */
static PyObject *idf_hash_table(PyObject *self, PyObject *args) {
    PyObject *keys_obj, *idf_obj, *slot_keys_obj, *slot_values_obj;
    if (!PyArg_ParseTuple(args, "OOOO", &keys_obj, &idf_obj, &slot_keys_obj, &slot_values_obj))
        return NULL;
    Py_buffer kv, iv, skv, svv;
    if (PyObject_GetBuffer(keys_obj, &kv, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (PyObject_GetBuffer(idf_obj, &iv, PyBUF_C_CONTIGUOUS) < 0) goto f1;
    if (PyObject_GetBuffer(slot_keys_obj, &skv, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) goto f2;
    if (PyObject_GetBuffer(slot_values_obj, &svv, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0)
        goto f3;
    Py_ssize_t n = kv.len / 8, n_slots = skv.len / 8;
    if (iv.len != n * 4 || svv.len != n_slots * 4 || n_slots < 2 * n ||
        (n_slots & (n_slots - 1))) {
        PyErr_SetString(PyExc_ValueError, "idf_hash_table: bad sizes");
        goto f4;
    }
    const uint64_t *keys = (const uint64_t *)kv.buf;
    const float *idf = (const float *)iv.buf;
    uint64_t *slot_keys = (uint64_t *)skv.buf;
    float *slot_values = (float *)svv.buf;
    uint64_t mask = (uint64_t)n_slots - 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t s = slot_of(keys[i], mask);
        while (!isnan(slot_values[s]) && slot_keys[s] != keys[i]) s = (s + 1) & mask;
        slot_keys[s] = keys[i];
        slot_values[s] = idf[i];
    }
    PyBuffer_Release(&svv);
    PyBuffer_Release(&skv);
    PyBuffer_Release(&iv);
    PyBuffer_Release(&kv);
    Py_RETURN_NONE;
f4:
    PyBuffer_Release(&svv);
f3:
    PyBuffer_Release(&skv);
f2:
    PyBuffer_Release(&iv);
f1:
    PyBuffer_Release(&kv);
    return NULL;
}

/* --- buffers ---------------------------------------------------------------------------- */

static int get_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, int writable,
                      const char *what) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) return -1;
    if (view->itemsize != itemsize) {
        PyErr_Format(PyExc_TypeError, "%s: expected items of %zd bytes, got %zd", what,
                     itemsize, view->itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

enum { KIND_COUNT = 0, KIND_BINARY = 1, KIND_TFIDF = 2, KIND_L2 = 3 };

/* bow_scores(tokens, lengths, ngram_size, kind, slot_keys, slot_idf, idf_unseen, log1p_table,
 *            rows, out)
 *
 * slot_keys / slot_idf: the IDF table from idf_hash_table (empty arrays: no IDF);
 * tokens: every doc's token attribute values (uint64), doc after doc; lengths: tokens per
 * doc (int64); rows: float32
 * (length + 1, nO), hash-bucket rows then the bias; out: float32 (n_docs, nO), zeros.
 * log1p_table[c] = float32(1 + log(c)) for small counts c (computed by NumPy, so the
 * tf-idf values match NumPy's float32 log to the bit); larger counts use logf.
 */
static PyObject *bow_scores(PyObject *self, PyObject *args) {
    PyObject *tokens_obj, *lengths_obj, *idf_keys_obj, *idf_obj, *table_obj, *rows_obj, *out_obj;
    int ngram_size, kind;
    float idf_unseen;
    if (!PyArg_ParseTuple(args, "OOiiOOfOOO", &tokens_obj, &lengths_obj, &ngram_size, &kind,
                          &idf_keys_obj, &idf_obj, &idf_unseen, &table_obj, &rows_obj,
                          &out_obj))
        return NULL;
    Py_buffer tokens_v, lengths_v, idf_keys_v, idf_v, table_v, rows_v, out_v;
    if (get_buffer(tokens_obj, &tokens_v, 8, 0, "tokens") < 0) return NULL;
    if (get_buffer(lengths_obj, &lengths_v, 8, 0, "lengths") < 0) {
        PyBuffer_Release(&tokens_v);
        return NULL;
    }
    Py_ssize_t capacity = 0;
    uint64_t *keys = NULL;
    float *values = NULL;
    if (get_buffer(idf_keys_obj, &idf_keys_v, 8, 0, "idf_keys") < 0) goto fail_keys;
    if (get_buffer(idf_obj, &idf_v, 4, 0, "idf") < 0) goto fail_idf;
    if (get_buffer(table_obj, &table_v, 4, 0, "log1p_table") < 0) goto fail_table;
    if (get_buffer(rows_obj, &rows_v, 4, 0, "rows") < 0) goto fail_rows;
    if (get_buffer(out_obj, &out_v, 4, 1, "out") < 0) goto fail_out;

    Py_ssize_t n_docs = lengths_v.shape[0];
    const uint64_t *all_tokens = (const uint64_t *)tokens_v.buf;
    const int64_t *lengths = (const int64_t *)lengths_v.buf;
    Py_ssize_t n_all_tokens = tokens_v.shape[0], start = 0;
    Py_ssize_t n_out = rows_v.ndim == 2 ? rows_v.shape[1] : 0;
    Py_ssize_t length = rows_v.ndim == 2 ? rows_v.shape[0] - 1 : 0;
    if (n_out < 1 || length < 1 || out_v.ndim != 2 || out_v.shape[0] != n_docs ||
        out_v.shape[1] != n_out || idf_v.shape[0] != idf_keys_v.shape[0] || ngram_size < 1 ||
        (idf_keys_v.shape[0] & (idf_keys_v.shape[0] - 1))) {
        PyErr_SetString(PyExc_ValueError, "bow_scores: inconsistent shapes");
        goto fail;
    }
    const uint64_t *idf_keys = (const uint64_t *)idf_keys_v.buf;
    const float *idf = (const float *)idf_v.buf;
    Py_ssize_t n_slots = idf_keys_v.shape[0];
    uint64_t slot_mask = (uint64_t)n_slots - 1;
    const float *log1p = (const float *)table_v.buf;
    Py_ssize_t n_table = table_v.shape[0];
    const float *rows = (const float *)rows_v.buf;
    float *out = (float *)out_v.buf;
    const float *bias = rows + length * n_out;

    for (Py_ssize_t d = 0; d < n_docs; d++) {
        const uint64_t *tokens = all_tokens + start;
        Py_ssize_t n_tokens = (Py_ssize_t)lengths[d];
        if (n_tokens < 0 || start + n_tokens > n_all_tokens) {
            PyErr_SetString(PyExc_ValueError, "bow_scores: lengths do not match tokens");
            goto fail;
        }
        start += n_tokens;
        Py_ssize_t n_keys = 0;
        for (int n = 1; n <= ngram_size; n++)
            if (n_tokens >= n) n_keys += n_tokens - n + 1;
        if (n_keys > capacity) {
            capacity = n_keys * 2;
            free(keys);
            free(values);
            keys = (uint64_t *)malloc(capacity * sizeof(uint64_t));
            values = (float *)malloc(capacity * sizeof(float));
            if (!keys || !values) {
                PyErr_NoMemory();
                goto fail;
            }
        }
        Py_ssize_t k = 0;
        for (Py_ssize_t i = 0; i < n_tokens; i++) keys[k++] = tokens[i];
        for (int n = 2; n <= ngram_size; n++)
            for (Py_ssize_t i = 0; i + n <= n_tokens; i++) keys[k++] = murmur64a(tokens + i, n, 0);
        float *doc_out = out + d * n_out;
        for (Py_ssize_t j = 0; j < n_out; j++) doc_out[j] += 1.0f * bias[j];
        if (n_keys == 0) continue;
        sort_u64(keys, n_keys);
        /* distinct keys with their counts, in sorted order */
        Py_ssize_t n_unique = 0;
        for (Py_ssize_t i = 0; i < n_keys; i++) {
            if (n_unique && keys[n_unique - 1] == keys[i]) {
                values[n_unique - 1] += 1.0f;
            } else {
                keys[n_unique] = keys[i];
                values[n_unique++] = 1.0f;
            }
        }
        if (kind == KIND_BINARY) {
            for (Py_ssize_t i = 0; i < n_unique; i++) values[i] = 1.0f;
        } else if (kind == KIND_TFIDF || kind == KIND_L2) {
            double sum = 0.0;
            for (Py_ssize_t i = 0; i < n_unique; i++) {
                float v = values[i];
                if (kind == KIND_TFIDF) {
                    Py_ssize_t c = (Py_ssize_t)v;
                    v = c < n_table ? log1p[c] : 1.0f + logf(v);
                    float w = 1.0f;
                    if (n_slots) {
                        Py_ssize_t s = slot_of(keys[i], slot_mask);
                        while (!isnan(idf[s]) && idf_keys[s] != keys[i]) s = (s + 1) & slot_mask;
                        w = isnan(idf[s]) ? idf_unseen : idf[s];
                    }
                    v *= w;
                }
                values[i] = v;
                sum += (double)(v * v);
            }
            double norm = sqrt(sum);
            for (Py_ssize_t i = 0; i < n_unique; i++)
                values[i] = (float)((double)values[i] / norm);
        }
        for (Py_ssize_t i = 0; i < n_unique; i++) {
            const float v = values[i];
            for (uint32_t seed = 0; seed < 2; seed++) {
                const float *row = rows + (Py_ssize_t)(murmur3_32_u64(keys[i], seed) %
                                                       (uint32_t)length) * n_out;
                for (Py_ssize_t j = 0; j < n_out; j++) doc_out[j] += v * row[j];
            }
        }
    }
    free(keys);
    free(values);
    PyBuffer_Release(&out_v);
    PyBuffer_Release(&rows_v);
    PyBuffer_Release(&table_v);
    PyBuffer_Release(&idf_v);
    PyBuffer_Release(&idf_keys_v);
    PyBuffer_Release(&lengths_v);
    PyBuffer_Release(&tokens_v);
    Py_RETURN_NONE;
fail:
    free(keys);
    free(values);
    PyBuffer_Release(&out_v);
fail_out:
    PyBuffer_Release(&rows_v);
fail_rows:
    PyBuffer_Release(&table_v);
fail_table:
    PyBuffer_Release(&idf_v);
fail_idf:
    PyBuffer_Release(&idf_keys_v);
fail_keys:
    PyBuffer_Release(&lengths_v);
    PyBuffer_Release(&tokens_v);
    return NULL;
}

/* set_cats(docs, labels, values, template)
 *
 * doc.cats[label] = float(values[i, j]) for every doc i and label j; values: float64
 * (n_docs, n_labels). A doc whose cats is an empty dict gets a copy of template (a dict
 * holding every label), so no dict grows; others are updated in place.
 */
static PyObject *set_cats(PyObject *self, PyObject *args) {
    PyObject *docs, *labels, *values_obj, *template_;
    if (!PyArg_ParseTuple(args, "O!O!OO!", &PyList_Type, &docs, &PyTuple_Type, &labels,
                          &values_obj, &PyDict_Type, &template_))
        return NULL;
    Py_buffer values_v;
    if (get_buffer(values_obj, &values_v, 8, 0, "values") < 0) return NULL;
    Py_ssize_t n_docs = PyList_GET_SIZE(docs), n_labels = PyTuple_GET_SIZE(labels);
    if (values_v.ndim != 2 || values_v.shape[0] != n_docs || values_v.shape[1] != n_labels) {
        PyBuffer_Release(&values_v);
        PyErr_SetString(PyExc_ValueError, "set_cats: values must be (n_docs, n_labels)");
        return NULL;
    }
    static PyObject *cats_name = NULL;
    if (!cats_name && !(cats_name = PyUnicode_InternFromString("cats"))) goto fail;
    const double *values = (const double *)values_v.buf;
    for (Py_ssize_t i = 0; i < n_docs; i++) {
        PyObject *doc = PyList_GET_ITEM(docs, i);
        PyObject *cats = PyObject_GetAttr(doc, cats_name);
        if (!cats) goto fail;
        int fresh = PyDict_CheckExact(cats) && PyDict_GET_SIZE(cats) == 0;
        if (fresh) {
            Py_DECREF(cats);
            cats = PyDict_Copy(template_);
            if (!cats) goto fail;
        }
        const double *row = values + i * n_labels;
        for (Py_ssize_t j = 0; j < n_labels; j++) {
            PyObject *value = PyFloat_FromDouble(row[j]);
            if (!value || PyObject_SetItem(cats, PyTuple_GET_ITEM(labels, j), value) < 0) {
                Py_XDECREF(value);
                Py_DECREF(cats);
                goto fail;
            }
            Py_DECREF(value);
        }
        if (fresh && PyObject_SetAttr(doc, cats_name, cats) < 0) {
            Py_DECREF(cats);
            goto fail;
        }
        Py_DECREF(cats);
    }
    PyBuffer_Release(&values_v);
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&values_v);
    return NULL;
}

/* set_decided_exclusive(docs, labels, top, keep, key)
 *
 * doc.user_data[key] = [labels[top[i]]] if keep[i] else [] for every doc i; top: int64,
 * keep: bool (one byte) per doc.
 */
static PyObject *set_decided_exclusive(PyObject *self, PyObject *args) {
    PyObject *docs, *labels, *top_obj, *keep_obj, *key;
    if (!PyArg_ParseTuple(args, "O!O!OOO", &PyList_Type, &docs, &PyTuple_Type, &labels,
                          &top_obj, &keep_obj, &key))
        return NULL;
    Py_buffer top_v, keep_v;
    if (get_buffer(top_obj, &top_v, 8, 0, "top") < 0) return NULL;
    if (get_buffer(keep_obj, &keep_v, 1, 0, "keep") < 0) {
        PyBuffer_Release(&top_v);
        return NULL;
    }
    Py_ssize_t n_docs = PyList_GET_SIZE(docs), n_labels = PyTuple_GET_SIZE(labels);
    static PyObject *user_data_name = NULL;
    const int64_t *top = (const int64_t *)top_v.buf;
    const char *keep = (const char *)keep_v.buf;
    if (top_v.shape[0] != n_docs || keep_v.shape[0] != n_docs) {
        PyErr_SetString(PyExc_ValueError, "set_decided_exclusive: one top and keep per doc");
        goto fail;
    }
    if (!user_data_name && !(user_data_name = PyUnicode_InternFromString("user_data")))
        goto fail;
    for (Py_ssize_t i = 0; i < n_docs; i++) {
        if (top[i] < 0 || top[i] >= n_labels) {
            PyErr_SetString(PyExc_IndexError, "set_decided_exclusive: label index");
            goto fail;
        }
        PyObject *decided = PyList_New(keep[i] ? 1 : 0);
        if (!decided) goto fail;
        if (keep[i]) {
            PyObject *label = PyTuple_GET_ITEM(labels, top[i]);
            Py_INCREF(label);
            PyList_SET_ITEM(decided, 0, label);
        }
        PyObject *user_data = PyObject_GetAttr(PyList_GET_ITEM(docs, i), user_data_name);
        int rc = user_data ? PyObject_SetItem(user_data, key, decided) : -1;
        Py_XDECREF(user_data);
        Py_DECREF(decided);
        if (rc < 0) goto fail;
    }
    PyBuffer_Release(&keep_v);
    PyBuffer_Release(&top_v);
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&keep_v);
    PyBuffer_Release(&top_v);
    return NULL;
}

static PyMethodDef methods[] = {
    {"set_decided_exclusive", set_decided_exclusive, METH_VARARGS,
     "Write the decided label lists of an exclusive batch (see above)."},
    {"bow_scores", bow_scores, METH_VARARGS,
     "Scores of thinc's SparseLinear over a batch's hashed n-gram features (see module)."},
    {"idf_hash_table", idf_hash_table, METH_VARARGS, "Fill the IDF hash table (see above)."},
    {"set_cats", set_cats, METH_VARARGS, "Write doc.cats for a batch (see module)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speedups",
                                    "Compiled bow inference kernels (optional).", -1, methods};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module); }

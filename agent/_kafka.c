/*
 * The body of a Kafka v2 record batch -> kafka-python's DefaultRecord objects, in one call.
 *
 * Why: kafka-python reads each record in Python (varints, slices, an object), ~9 us a record at
 * the agent's record sizes; this builds the same objects in ~2 us. Used only through
 * agent/kafka_batches.py, which hands anything this reader calls malformed back to kafka-python's
 * own reader, so errors are reported exactly as before.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>


/* A zigzag varint (Kafka's Varint/Varlong). 0 ok, -1 truncated or over 10 bytes. */
static inline int read_varint(const uint8_t *b, Py_ssize_t n, Py_ssize_t *pos, int64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*pos >= n) return -1;
        uint8_t c = b[(*pos)++];
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = (int64_t)((v >> 1) ^ (~(v & 1) + 1));
            return 0;
        }
    }
    return -1;
}

static PyObject *ATTR[7];  /* DefaultRecord's slots, interned once */

static PyObject *nullable_bytes(const uint8_t *b, Py_ssize_t n, Py_ssize_t *pos, int *bad) {
    int64_t len;
    if (read_varint(b, n, pos, &len) < 0) {
        *bad = 1;
        return NULL;
    }
    if (len < 0) return Py_NewRef(Py_None);
    if (len > n - *pos) {
        *bad = 1;
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize((const char *)b + *pos, (Py_ssize_t)len);
    *pos += (Py_ssize_t)len;
    return out;
}

/* kafka_records(record_cls, buffer, pos, count, base_offset, first_timestamp, timestamp_type,
 *               log_append_timestamp or None) -> list of record_cls instances
 * The records of one decompressed batch body, as kafka-python's DefaultRecordBatch reads them
 * (DefaultRecord(size_in_bytes, offset, timestamp, timestamp_type, key, value, headers)). Any
 * structural problem (truncation, a size mismatch, bytes left over, a header key that is not
 * UTF-8) raises ValueError, and the caller lets kafka-python's own reader report it. */
static PyObject *kafka_records(PyObject *mod, PyObject *args) {
    PyObject *cls, *bufobj, *append_ts;
    Py_ssize_t pos, count;
    long long base_offset, first_ts;
    int ts_type;
    if (!PyArg_ParseTuple(args, "O!OnnLLiO", &PyType_Type, &cls, &bufobj, &pos, &count, &base_offset, &first_ts,
                          &ts_type, &append_ts))
        return NULL;
    long long fixed_ts = 0;
    int use_fixed = append_ts != Py_None;
    if (use_fixed && (fixed_ts = PyLong_AsLongLong(append_ts)) == -1 && PyErr_Occurred()) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(bufobj, &view, PyBUF_SIMPLE) < 0) return NULL;
    const uint8_t *b = view.buf;
    Py_ssize_t n = view.len;
    PyTypeObject *type = (PyTypeObject *)cls;
    /* the class's slot descriptors, set directly (no attribute lookup per record and field) */
    PyObject *descr[7] = {NULL};
    for (int k = 0; k < 7; k++) {
        descr[k] = PyObject_GetAttr(cls, ATTR[k]);
        if (descr[k] == NULL || Py_TYPE(descr[k])->tp_descr_set == NULL) {
            for (int j = 0; j <= k; j++) Py_XDECREF(descr[j]);
            PyBuffer_Release(&view);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "record class lacks a settable slot");
            return NULL;
        }
    }
    PyObject *tstype = PyLong_FromLong(ts_type), *empty = PyTuple_New(0);
    PyObject *out = (count >= 0 && count <= n) ? PyList_New(0) : NULL;
    int bad = out == NULL && !PyErr_Occurred();
    if (tstype == NULL || empty == NULL) goto fail;
    for (Py_ssize_t r = 0; out != NULL && r < count; r++) {
        int64_t length, attrs, ts_delta, off_delta, n_headers;
        PyObject *key = NULL, *value = NULL, *headers = NULL, *rec = NULL;
        if (read_varint(b, n, &pos, &length) < 0 || length < 0) { bad = 1; break; }
        Py_ssize_t start = pos;
        if (read_varint(b, n, &pos, &attrs) < 0 || read_varint(b, n, &pos, &ts_delta) < 0 ||
            read_varint(b, n, &pos, &off_delta) < 0) { bad = 1; break; }
        key = nullable_bytes(b, n, &pos, &bad);
        if (key == NULL) break;
        value = nullable_bytes(b, n, &pos, &bad);
        if (value == NULL) goto record_fail;
        if (read_varint(b, n, &pos, &n_headers) < 0 || n_headers < 0 || n_headers > n) { bad = 1; goto record_fail; }
        headers = PyList_New(0);
        if (headers == NULL) goto record_fail;
        for (int64_t h = 0; h < n_headers; h++) {
            int64_t klen;
            if (read_varint(b, n, &pos, &klen) < 0 || klen < 0 || klen > n - pos) { bad = 1; goto record_fail; }
            PyObject *hk = PyUnicode_DecodeUTF8((const char *)b + pos, (Py_ssize_t)klen, "strict");
            if (hk == NULL) {
                if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                    PyErr_Clear();
                    bad = 1;
                }
                goto record_fail;
            }
            pos += (Py_ssize_t)klen;
            PyObject *hv = nullable_bytes(b, n, &pos, &bad);
            if (hv == NULL) {
                Py_DECREF(hk);
                goto record_fail;
            }
            PyObject *pair = PyTuple_Pack(2, hk, hv);
            Py_DECREF(hk);
            Py_DECREF(hv);
            if (pair == NULL || PyList_Append(headers, pair) < 0) {
                Py_XDECREF(pair);
                goto record_fail;
            }
            Py_DECREF(pair);
        }
        if (pos - start != length) { bad = 1; goto record_fail; }
        rec = type->tp_new(type, empty, NULL);  /* no __init__: the slots are set below */
        if (rec == NULL) goto record_fail;
        {
            PyObject *vals[7] = {PyLong_FromSsize_t(pos - start), PyLong_FromLongLong(base_offset + off_delta),
                                 PyLong_FromLongLong(use_fixed ? fixed_ts : first_ts + ts_delta), Py_NewRef(tstype),
                                 Py_NewRef(key), Py_NewRef(value), Py_NewRef(headers)};
            int err = 0;
            for (int k = 0; k < 7; k++) {
                if (vals[k] == NULL || (!err && Py_TYPE(descr[k])->tp_descr_set(descr[k], rec, vals[k]) < 0)) err = 1;
                Py_XDECREF(vals[k]);
            }
            if (err || PyList_Append(out, rec) < 0) goto record_fail;
        }
        Py_DECREF(rec);
        Py_DECREF(key);
        Py_DECREF(value);
        Py_DECREF(headers);
        continue;
    record_fail:
        Py_XDECREF(rec);
        Py_XDECREF(key);
        Py_XDECREF(value);
        Py_XDECREF(headers);
        Py_CLEAR(out);
        break;
    }
    if (out != NULL && !bad && pos != n) bad = 1;  /* bytes left after the last record */
fail:
    PyBuffer_Release(&view);
    for (int k = 0; k < 7; k++) Py_XDECREF(descr[k]);
    Py_XDECREF(tstype);
    Py_XDECREF(empty);
    if (bad) {
        Py_XDECREF(out);
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "malformed record batch body");
        return NULL;
    }
    return out;
}


static PyMethodDef methods[] = {
    {"kafka_records", kafka_records, METH_VARARGS, "The records of a decompressed Kafka v2 batch body."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef kafkamodule = {PyModuleDef_HEAD_INIT, "agent._kafka",
                                         "Kafka v2 record batch bodies read natively for kafka-python.", -1, methods};

PyMODINIT_FUNC PyInit__kafka(void) {
    static const char *names[7] = {"_size_in_bytes", "_offset", "_timestamp", "_timestamp_type", "_key", "_value",
                                   "_headers"};
    for (int k = 0; k < 7; k++)
        if ((ATTR[k] = PyUnicode_InternFromString(names[k])) == NULL) return NULL;
    return PyModule_Create(&kafkamodule);
}

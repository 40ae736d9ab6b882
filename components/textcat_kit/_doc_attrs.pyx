# cython: language_level=3, boundscheck=False, wraparound=False
"""A batch's token attributes in one call (optional compiled module).

``doc.to_array(attr)`` costs about 2 µs per doc in Python-level argument handling and
NumPy array creation, as much as the bow classifier's whole kernel. This reads the same
values (spaCy's ``get_token_attr``, what ``to_array`` calls) for every doc of a batch
into one array. Built with Cython against spaCy's declarations; the package falls back to
``to_array`` when it is not built.
"""
from libc.stdint cimport int64_t, uint64_t
from spacy.attrs cimport attr_id_t
from spacy.tokens.doc cimport Doc, get_token_attr

import numpy


def batch_token_attrs(list docs, int attr):
    """(tokens, lengths): every token's ``attr`` value, doc after doc, as uint64 (what
    ``numpy.concatenate([doc.to_array(attr) for doc in docs])`` gives), and the number
    of tokens of each doc as int64."""
    cdef Py_ssize_t n_docs = len(docs), total = 0, i, j, k = 0
    cdef Doc doc
    for i in range(n_docs):
        doc = docs[i]
        total += doc.length
    tokens = numpy.empty(total, dtype=numpy.uint64)
    lengths = numpy.empty(n_docs, dtype=numpy.int64)
    cdef uint64_t[::1] out = tokens
    cdef int64_t[::1] out_lengths = lengths
    for i in range(n_docs):
        doc = docs[i]
        out_lengths[i] = doc.length
        for j in range(doc.length):
            out[k] = get_token_attr(&doc.c[j], <attr_id_t>attr)
            k += 1
    return tokens, lengths

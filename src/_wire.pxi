# Protobuf wire helpers shared by the compiled codecs: included (textually) by
# src/_codec.pyx and src/_watch.pyx, so that each module gets its own copy of these
# inline helpers and calls them without any cross-module overhead.
#
# The including module provides the names used here: the cimports of cpython.buffer
# (PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer), cpython.bytes (PyBytes_*),
# cpython.long / cpython.number (for _arg_int), libc.stdint (int64_t, uint64_t),
# libc.string (memcpy), the ResponseHeader class, the ResponseParser type
# (fastetcd/_codec.pxd), and DecodeError.

# -------------------- argument checks

cdef inline int _arg_bytes(object o, str name) except -1:
    if not PyBytes_Check(o):
        raise TypeError(f"{name} must be bytes, not {type(o).__name__}")
    return 0


cdef long long _arg_int(object o, str name, long long lo, long long hi) except? -1:
    """An int argument (an int, a bool or any ``__index__`` type, like the pure twin)
    within lo..hi: TypeError for anything else, OverflowError outside the range."""
    cdef int overflow = 0
    cdef long long v
    if not PyLong_Check(o):
        if not PyIndex_Check(o):
            raise TypeError(f"{name} must be an int, not {type(o).__name__}")
        o = PyNumber_Index(o)
    v = PyLong_AsLongLongAndOverflow(o, &overflow)
    if overflow or v < lo or v > hi:
        raise OverflowError(f"{name}={o!r} is out of range [{lo}, {hi}]")
    return v


# -------------------- decoding helpers
#
# Every reader takes the current position by pointer and the end of the enclosing
# message; nothing is read at or past ``end``.


# The raising paths live in their own (never inlined) functions so that the inline fast
# paths below stay small enough for the C compiler to inline into the parsers.

cdef int _truncated() except -1:
    raise DecodeError("truncated message")


cdef int _varint_too_long() except -1:
    raise DecodeError("varint is longer than 64 bits")


cdef int _overrun() except -1:
    raise DecodeError("length-delimited field runs past the end of its message")


cdef int _read_varint_slow(
    const unsigned char** pp, const unsigned char* end, uint64_t* out
) except -1:
    """Read a varint (1 to 10 bytes) without reading at or past ``end``."""
    cdef const unsigned char* p = pp[0]
    cdef uint64_t result = 0
    cdef uint64_t b
    cdef int i
    if end - p >= 10:
        # All ten bytes a varint may take are inside the buffer: no per-byte check.
        for i in range(9):
            b = p[i]
            result |= (b & 0x7F) << (7 * i)
            if b < 0x80:
                out[0] = result
                pp[0] = p + i + 1
                return 0
        b = p[9]
        if b > 1:  # the 10th byte may only carry bit 63
            return _varint_too_long()
        out[0] = result | (b << 63)
        pp[0] = p + 10
        return 0
    for i in range(10):
        if p >= end:
            return _truncated()
        b = p[0]
        p += 1
        if i == 9 and b > 1:
            return _varint_too_long()
        result |= (b & 0x7F) << (7 * i)
        if b < 0x80:
            out[0] = result
            pp[0] = p
            return 0
    return _varint_too_long()  # unreachable: the 10th byte is checked above


cdef inline int _read_varint(
    const unsigned char** pp, const unsigned char* end, uint64_t* out
) except -1:
    """Read a varint at ``*pp``; advance ``*pp`` past it."""
    cdef const unsigned char* p = pp[0]
    if p < end and p[0] < 0x80:
        out[0] = p[0]
        pp[0] = p + 1
        return 0
    if end - p >= 2 and p[1] < 0x80:
        out[0] = (p[0] & 0x7F) | (<uint64_t>p[1] << 7)
        pp[0] = p + 2
        return 0
    if end - p >= 3 and p[2] < 0x80:  # three bytes: revisions up to 2,097,151
        out[0] = (p[0] & 0x7F) | (<uint64_t>(p[1] & 0x7F) << 7) | (<uint64_t>p[2] << 14)
        pp[0] = p + 3
        return 0
    return _read_varint_slow(pp, end, out)


cdef int _read_len_slow(
    const unsigned char** pp, const unsigned char* end, Py_ssize_t* out
) except -1:
    cdef uint64_t n
    _read_varint_slow(pp, end, &n)
    if n > <uint64_t>(end - pp[0]):
        return _overrun()
    out[0] = <Py_ssize_t>n
    return 0


cdef inline int _read_len(
    const unsigned char** pp, const unsigned char* end, Py_ssize_t* out
) except -1:
    """Read the length of a length-delimited field and check that many bytes follow
    before ``end``; advance ``*pp`` to the first byte of the payload."""
    cdef const unsigned char* p = pp[0]
    if p < end and p[0] < 0x80 and p[0] < end - p:  # i.e. p[0] <= end - (p + 1)
        out[0] = p[0]
        pp[0] = p + 1
        return 0
    return _read_len_slow(pp, end, out)


cdef int _skip_field(
    const unsigned char** pp, const unsigned char* end, uint64_t tag, uint64_t nknown
) except -1:
    """Skip a field that is not one the caller reads: an unknown field (field number
    above ``nknown``) of wire type 0, 1, 2 or 5. Anything else is malformed."""
    cdef uint64_t field = tag >> 3
    cdef unsigned int wire = tag & 7
    cdef uint64_t v
    cdef Py_ssize_t n = 0
    if tag > 0xFFFFFFFF:
        raise DecodeError(f"field tag {tag} does not fit in 32 bits")
    if field == 0:
        raise DecodeError("field number 0")
    if field <= nknown:
        raise DecodeError(f"field {field} has the wrong wire type ({wire})")
    if wire == 0:
        _read_varint(pp, end, &v)
    elif wire == 1:
        if end - pp[0] < 8:
            return _truncated()
        pp[0] += 8
    elif wire == 2:
        _read_len(pp, end, &n)
        pp[0] += n
    elif wire == 5:
        if end - pp[0] < 4:
            return _truncated()
        pp[0] += 4
    else:
        raise DecodeError(f"unsupported wire type {wire} (field {field})")
    return 0


cdef inline bytes _bytes_at(const unsigned char* p, Py_ssize_t n):
    return PyBytes_FromStringAndSize(<char*>p, n)


# -------------------- shared message parsers


# The varint bytes of the last cluster_id and member_id read, and their values: the next
# header (from the same member, in the common case) has the same bytes, compared instead
# of decoded (they are random 64-bit numbers: ten bytes each).
cdef unsigned char _id_bytes[2][10]
cdef Py_ssize_t _id_len[2]
cdef uint64_t _id_value[2]
_id_len[0] = _id_len[1] = 0


cdef extern from *:
    """
    /* Are the n bytes at a and b the same? For 8 <= n <= 16 (an id's varint is 8 to 10
       bytes): two 8-byte loads from each, the second overlapping the first, instead of a
       call to memcmp. */
    static inline int fastetcd_same_bytes(const unsigned char *a, const unsigned char *b,
                                          Py_ssize_t n) {
        uint64_t a0, b0, a1, b1;
        if (n < 8 || n > 16) return memcmp(a, b, (size_t)n) == 0;
        memcpy(&a0, a, 8); memcpy(&b0, b, 8);
        memcpy(&a1, a + n - 8, 8); memcpy(&b1, b + n - 8, 8);
        return a0 == b0 && a1 == b1;
    }
    """
    bint _same_bytes "fastetcd_same_bytes"(const unsigned char* a, const unsigned char* b,
                                           Py_ssize_t n)


cdef inline int _read_id(const unsigned char** pp, const unsigned char* end, int which,
                         uint64_t* out) except -1:
    """Read the cluster_id (0) or member_id (1) varint at ``*pp``."""
    cdef const unsigned char* p = pp[0]
    cdef Py_ssize_t n = _id_len[which]
    if n and end - p >= n and _same_bytes(p, _id_bytes[which], n):
        # the same bytes as last time, ending where a varint ends: the same value
        out[0] = _id_value[which]
        pp[0] = p + n
        return 0
    _read_varint(pp, end, out)
    n = pp[0] - p
    memcpy(_id_bytes[which], p, n)
    _id_len[which] = n
    _id_value[which] = out[0]
    return 0


cdef int _read_header(
    const unsigned char* p, const unsigned char* end, uint64_t* fields
) except -1:
    """Read a ResponseHeader's fields into ``fields`` (cluster_id, member_id, revision,
    raft_term), checking its bytes; no object is made."""
    cdef uint64_t tag
    fields[0] = fields[1] = fields[2] = fields[3] = 0
    while p < end:
        _read_varint(&p, end, &tag)
        if tag == 0x08:
            _read_id(&p, end, 0, &fields[0])
        elif tag == 0x10:
            _read_id(&p, end, 1, &fields[1])
        elif tag == 0x18:
            _read_varint(&p, end, &fields[2])
        elif tag == 0x20:
            _read_varint(&p, end, &fields[3])
        else:
            _skip_field(&p, end, tag, 4)
    return 0


# The cluster and member ids of the last header parsed, and their int objects: the next
# header, from the same member, shares them instead of making two new 64-bit ints.
cdef uint64_t _last_cluster_id = 0, _last_member_id = 0
cdef object _last_cluster_obj = 0, _last_member_obj = 0


cdef ResponseHeader _parse_header(const unsigned char* p, const unsigned char* end):
    global _last_cluster_id, _last_member_id, _last_cluster_obj, _last_member_obj
    cdef uint64_t fields[4]
    cdef ResponseHeader h
    _read_header(p, end, fields)
    h = ResponseHeader.__new__(ResponseHeader)
    if fields[0] != _last_cluster_id:
        _last_cluster_obj = fields[0]
        _last_cluster_id = fields[0]
    if fields[1] != _last_member_id:
        _last_member_obj = fields[1]
        _last_member_id = fields[1]
    h.cluster_id = _last_cluster_obj
    h.member_id = _last_member_obj
    h.revision = <int64_t>fields[2]
    h.raft_term = fields[3]
    return h


cdef object _decode(object data, ResponseParser parse):
    """Run ``parse`` over the bytes of ``data`` (bytes, or any C-contiguous buffer)."""
    cdef Py_buffer view
    cdef const unsigned char* p
    if PyBytes_CheckExact(data):
        p = <const unsigned char*>PyBytes_AS_STRING(data)
        return parse(p, p + PyBytes_GET_SIZE(data))
    try:
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    except BufferError:
        # A buffer that is not C-contiguous (e.g. a strided memoryview): copy it, as the
        # pure twin does with memoryview(data).tobytes().
        data = memoryview(data).tobytes()
        p = <const unsigned char*>PyBytes_AS_STRING(data)
        return parse(p, p + PyBytes_GET_SIZE(data))
    try:
        p = <const unsigned char*>view.buf
        return parse(p, p + view.len)
    finally:
        PyBuffer_Release(&view)

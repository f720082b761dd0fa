# Declarations of fastetcd._codec (src/_codec.pyx) that other compiled modules cimport:
# the result classes the watch core builds straight from response bytes, and the planned
# call the native transport's AsyncCall sends. (Cython looks
# for a package module's .pxd in the package, hence this file is here, not in src/.)

cdef class ResponseHeader:
    cdef object cluster_id, member_id, revision, raft_term
    cdef tuple _tuple(self)


cdef class KeyValue:
    cdef object key, value, create_revision, mod_revision, version, lease
    cdef tuple _tuple(self)


cdef class PutResult:
    cdef object header, prev_kv
    cdef tuple _tuple(self)


# A compiled response parser: the decoded message between two pointers (the parsers of
# _codec.pyx and _watch.pyx; _wire.pxi's _decode runs one over a buffer)
ctypedef object (*ResponseParser)(const unsigned char*, const unsigned char*)


cdef class Call:
    cdef readonly str method
    cdef readonly bytes request
    cdef readonly object decode
    cdef readonly bint repeatable
    cdef readonly object timeout
    # the compiled parser ``decode`` runs over the bytes, when the planner set it (NULL:
    # call ``decode``); the native transport parses a response in place with it
    cdef ResponseParser parse


# The planners' steps for a get and a put, for the native asyncio transport, which writes
# those two requests straight into a connection's output instead of into a bytes object
# (see AsyncCaller.get and AsyncCaller.put in src/_h2_asyncio.pxi): the user arguments'
# checks and coercions, the requests' sizes and writers, and the responses' parsers.
from libc.stdint cimport int64_t, uint64_t

cdef bytes _user_key(object key, str what)
cdef bytes _user_bytes(object value, str what)
cdef int64_t _user_int64(object value, str what, int64_t minimum) except? -1
cpdef object check_timeout(timeout)
cdef Py_ssize_t _get_size(bytes key, uint64_t rev, bint serializable)
cdef unsigned char* _get_write(unsigned char* p, bytes key, uint64_t rev, bint serializable)
cdef Py_ssize_t _put_size(
    bytes key, bytes value, uint64_t ls, bint prev_kv, bint ignore_value, bint ignore_lease
)
cdef unsigned char* _put_write(
    unsigned char* p, bytes key, bytes value, uint64_t ls, bint prev_kv, bint ignore_value,
    bint ignore_lease
)
cdef object _parse_get(const unsigned char* p, const unsigned char* end)
cdef PutResult _parse_put(const unsigned char* p, const unsigned char* end)

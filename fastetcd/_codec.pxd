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

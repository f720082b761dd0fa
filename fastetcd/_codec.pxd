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


cdef class Call:
    cdef readonly str method
    cdef readonly bytes request
    cdef readonly object decode
    cdef readonly bint repeatable
    cdef readonly object timeout

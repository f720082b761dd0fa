"""Protobuf modules generated from ``protos/`` by ``scripts/gen_protos.py`` (do not edit).

They register their descriptors in ``POOL``, a descriptor pool of fastetcd's own, not in
protobuf's default pool: other etcd clients register the same names there, and a process may
well import both. The KV hot path never imports these modules.
"""

from google.protobuf import descriptor_pool

POOL = descriptor_pool.DescriptorPool()

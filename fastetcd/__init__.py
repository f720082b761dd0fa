"""fastetcd: a fast, complete etcd v3 client for Python."""

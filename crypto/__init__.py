"""age v1 files, keys, signed notes and Merkle log proofs. Pure: bytes in, bytes out, no I/O."""

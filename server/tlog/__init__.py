"""Each encounter's transparency log: appends, checkpoints, proofs, witness cosignatures."""

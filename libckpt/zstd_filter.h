/* placeholder replaced by the libckpt work: HDF5 zstd filter (id 32015) */

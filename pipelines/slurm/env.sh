# xffl job environment hook: sourced by train.sbatch and aggregate.sbatch before the step
# runs (xffl submit --env-hook FILE; copy this file and edit the copy). Put here what a
# login shell would do on your machine. Examples:
#
#   module load cuda/12.2 nccl/2.18 hdf5/1.12
#   export PATH=$HOME/xffl/bin:$PATH
#   export NCCL_SOCKET_IFNAME=ib0          # the interconnect NCCL should use
#   export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-8}
#   export XFFL_S3_ENDPOINT=object.example.eu:443 XFFL_S3_HTTPS=1
#
# Keep secrets out of this file: give them with --credentials FILE (mode 600).
:

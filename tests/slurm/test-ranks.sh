#!/usr/bin/env bash
# train.sbatch with several tasks under a real Slurm (issue 15): one rank per task through
# srun --mpi=pmix (Debian's Slurm has the plugin), Open MPI ranks joined by Slurm's PMIx
# (an MPI program stands in for xffl: every rank sees the same world of 2), one task by
# default as before, and a rank that fails ends the others (--kill-on-bad-exit): the job
# fails at once with that rank's code. Needs SLURM_CONF of a running cluster.
set -u
. "$(dirname "$0")/lib.sh"
W=$(mktemp -d /tmp/xffl-slurm-ranks.XXXXXX)
[ -n "${XFFL_TEST_KEEP:-}" ] || trap 'rm -rf "$W"' EXIT
mkdir -p "$W/logs"
# rank.sh: what one task sees, one line per task in $W/ranks.<job>
cat >"$W/rank.sh" <<S
#!/bin/sh
echo "procid=\${SLURM_PROCID:-} ntasks=\${SLURM_NTASKS:-} pmix=\${PMIX_RANK:-} args=\$*" >>"$W/ranks.\$SLURM_JOB_ID"
if [ -n "\${EXIT_ALL:-}" ]; then # both ranks meet first (as MPI ranks would in a barrier)
  touch "$W/met.\$SLURM_JOB_ID.\$SLURM_PROCID"
  while [ "\$(ls "$W" | grep -c "^met.\$SLURM_JOB_ID\\.")" -lt "\$SLURM_NTASKS" ]; do sleep 0.05; done
  exit "\$EXIT_ALL"
fi
[ -n "\${FAIL_RANK:-}" ] && [ "\$SLURM_PROCID" = "\$FAIL_RANK" ] && exit 3
[ -n "\${FAIL_RANK:-}" ] && sleep 120
# as xffl train's rank 0 does: the round's result on stdout (train.sbatch checks for it)
[ "\$SLURM_PROCID" = 0 ] && echo "round 3 (stand-in)"
exit 0
S
chmod +x "$W/rank.sh"
sub() { # bin tasks [env,...]
  sbatch --parsable --job-name=ranks --nodes=1 --ntasks-per-node="$2" --requeue --open-mode=append \
    --output="$W/logs/%x-%j.out" --export="ALL,XFFL_BIN=$1,XFFL_STEP=$SLURM_DIR_T/xffl-step,XFFL_LOG_DIR=$W/logs${3:+,$3}" \
    "$SLURM_DIR_T/train.sbatch" --store S --round 3
}

check "srun --mpi=list offers pmix" eval 'srun --mpi=list 2>&1 | grep -qw pmix'

j1=$(sub "$W/rank.sh" 2)
st=$(wait_job "$j1" 120)
check "2 tasks: the job completes" [ "$st" = COMPLETED ]
check "2 tasks: one train process per task, ranks 0 and 1 of 2, joined through PMIx" \
  eval '[ "$(sed "s/ pmix=[0-9]* / pmix=N /" "$W/ranks.$j1" | sort | tr "\n" "|")" = "procid=0 ntasks=2 pmix=N args=train --store S --round 3|procid=1 ntasks=2 pmix=N args=train --store S --round 3|" ]'

sbatch_one=$(sbatch --parsable --job-name=ranks1 --ntasks=1 --output="$W/logs/%x-%j.out" \
  --export="ALL,XFFL_BIN=$W/rank.sh,XFFL_STEP=$SLURM_DIR_T/xffl-step,XFFL_LOG_DIR=$W/logs" "$SLURM_DIR_T/train.sbatch" --store S --round 3)
st=$(wait_job "$sbatch_one" 120)
check "1 task (the default): one process, no MPI plugin, as before" \
  eval '[ "$st" = COMPLETED ] && [ "$(cat "$W/ranks.$sbatch_one")" = "procid=0 ntasks=1 pmix= args=train --store S --round 3" ]'

start=$SECONDS
j2=$(sub "$W/rank.sh" 2 FAIL_RANK=1)
st=$(wait_job "$j2" 110)
check "a rank exiting 3 ends the other (sleeping 120 s): the job fails well before" \
  eval '[ "$st" = FAILED ] && [ $((SECONDS - start)) -lt 100 ]'
note "srun's exit code then: $(job_field "$j2" ExitCode) (the highest of the ranks', a killed one's 128 + signal)"
# every rank exits 75 (not yet, decided together): the job requeues, as with one task
requeued=0
for i in 1 2 3; do
  j=$(sub "$W/rank.sh" 2 "EXIT_ALL=75,XFFL_REQUEUE_DELAY=600,XFFL_DEADLINE=3600")
  end=$((SECONDS + 60))
  while [ $SECONDS -lt $end ]; do
    [ "$(job_field "$j" Restarts)" = 1 ] && [ "$(job_state "$j")" = PENDING ] && break
    case "$(job_state "$j")" in FAILED|COMPLETED|CANCELLED) break ;; esac
    sleep 0.5
  done
  note "all ranks exit 75, try $i: $(job_state "$j"), restarts $(job_field "$j" Restarts), exit $(job_field "$j" ExitCode)"
  [ "$(job_state "$j")" = PENDING ] && requeued=$((requeued + 1))
  scancel "$j"
done
check "every rank exiting 75 together: the job requeues (3 of 3 tries)" [ $requeued = 3 ]

if command -v mpicc >/dev/null 2>&1; then
  cat >"$W/hello.c" <<'C'
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv)
{
    int rank, size, sum = 0, one = 1;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    char path[512];
    snprintf(path, sizeof path, "%s/mpi.%s", getenv("OUT_DIR"), getenv("SLURM_JOB_ID"));
    FILE *f = fopen(path, "a");
    fprintf(f, "rank %d of %d sum %d\n", rank, size, sum);
    fclose(f);
    if (rank == 0) printf("round 3 (stand-in)\n"); /* what train.sbatch checks for */
    MPI_Finalize();
    return 0;
}
C
  if mpicc -o "$W/hello" "$W/hello.c" 2>"$W/mpicc.err"; then
    j3=$(sub "$W/hello" 2 "OUT_DIR=$W")
    st=$(wait_job "$j3" 120)
    check "Open MPI under srun --mpi=pmix: ranks 0 and 1 of one world of 2 (all-reduce sums 2)" \
      eval '[ "$st" = COMPLETED ] && [ "$(sort "$W/mpi.$j3" | tr "\n" "|")" = "rank 0 of 2 sum 2|rank 1 of 2 sum 2|" ]'
  else
    fail "mpicc could not build an MPI program: $(head -3 "$W/mpicc.err")"
  fi
else
  note "no mpicc (libopenmpi-dev): the Open MPI check is skipped"
fi
[ $T_FAILED = 0 ] || show_logs "$W/logs"
exit 0

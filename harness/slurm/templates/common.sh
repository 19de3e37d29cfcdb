# -- signals: the harness runs in the background so that this shell can take them -------
#  USR1, sent @WARN_S@ s before the time limit: stop the run (in-flight cells are recorded
#        `preempted`) and requeue this job, which then resumes with what is left.
#  TERM  (preemption, scancel, scontrol requeue): pass it on and stop; Slurm requeues a
#        preempted job by itself.
main_pid=""
on_signal() {
  echo "harness job ${SLURM_JOB_ID}: $1 at $(date -u +%FT%TZ), stopping the run"
  if [ -n "$main_pid" ]; then
    kill -TERM "$main_pid" 2>/dev/null
    wait "$main_pid" 2>/dev/null
  fi
  if [ "$1" = USR1 ]; then
    scontrol requeue "$SLURM_JOB_ID" || true
  fi
  exit 143
}
trap 'on_signal USR1' USR1
trap 'on_signal TERM' TERM

# run_main CMD…: run CMD in the background and wait for it. Exit code 1 of the harness
# means some cells failed: they are rows in the results, not a failure of the job.
run_main() {
  "$@" &
  main_pid=$!
  wait "$main_pid"
  local rc=$?
  main_pid=""
  if [ "$rc" -eq 1 ]; then rc=0; fi
  return "$rc"
}

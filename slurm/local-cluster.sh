#!/usr/bin/env bash
# A real two-node Slurm on this one machine, for the integration tests and for trying
# `harness submit` without a cluster. Needs root and Debian/Ubuntu (apt-get).
#
#   slurm/local-cluster.sh up      install (once), configure and start: munged, slurmctld,
#                                  two slurmd ("nodes" n1 and n2 on ports 17001/17002)
#   slurm/local-cluster.sh down    stop every daemon it started
#   slurm/local-cluster.sh status  say whether the nodes answer
#
# HARNESS_SLURM_SPLIT=1|0 (at `up`): give each node its own half of the host's CPUs, or let
# both offer all of them; the default splits hosts with 4 or more CPUs (see write_config).
#
# Both commands are idempotent. No systemd: daemons are started directly and stopped by the
# PIDs in their pid files. State and logs go to $HARNESS_SLURM_STATE
# (default /var/tmp/harness-slurm); the configuration to /etc/slurm/slurm.conf, which is
# only overwritten when this script wrote it (first line below).
set -euo pipefail

STATE="${HARNESS_SLURM_STATE:-/var/tmp/harness-slurm}"
CONF=/etc/slurm/slurm.conf
MARK="# written by harness slurm/local-cluster.sh"
NODES=(n1 n2)
PORTS=(17001 17002)

die() { echo "local-cluster.sh: $*" >&2; exit 1; }

install_packages() {
  local missing=()
  for bin in slurmctld slurmd sbatch munged; do
    command -v "$bin" >/dev/null || missing+=("$bin")
  done
  [ ${#missing[@]} -eq 0 ] && return
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  echo "installing Slurm and munge (Debian packages)…"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null
}

write_config() {
  if [ -f "$CONF" ] && ! head -n1 "$CONF" | grep -qF "$MARK"; then
    die "$CONF exists and was not written by this script; not touching it"
  fi
  local host cpus mem_mb spec1="" spec2=""
  host="$(hostname -s)"
  cpus="$(nproc)"
  # Both nodes live on this host. With 4 or more CPUs each node gets half of them
  # (CpuSpecList withholds the other half from its jobs, and task/affinity binds every job
  # to the CPUs it was given), so together they offer no more CPUs than the host has and no
  # two jobs share a core. With fewer the halves would hold one CPU each, too few for the
  # two-ranks-per-node MPI layouts (Slurm refuses --ntasks-per-node above a node's CPUs,
  # even with --overcommit), so both nodes offer every CPU and their jobs can share cores:
  # the harness sees that (two nodes of one host) and marks its rows' placement unenforced.
  # HARNESS_SLURM_SPLIT=1 splits a 2- or 3-CPU host too (honest timings, no MPI layouts
  # with more ranks per node than its half); =0 never splits.
  local split="${HARNESS_SLURM_SPLIT:-}"
  if [ -z "$split" ]; then split=$([ "$cpus" -ge 4 ] && echo 1 || echo 0); fi
  if [ "$split" = 1 ] && [ "$cpus" -ge 2 ]; then
    local half=$(( cpus / 2 ))
    spec1=" CpuSpecList=$(seq -s, "$half" $(( cpus - 1 )))"
    spec2=" CpuSpecList=$(seq -s, 0 $(( half - 1 )))"
  fi
  # Half the memory per node: the two "nodes" share this machine.
  mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
  mkdir -p "$STATE/ctld" /etc/slurm
  local tmp="$CONF.tmp.$$"
  cat >"$tmp" <<EOF
$MARK
ClusterName=harness
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool-%n
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd-%n.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd-%n.log
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerParameters=bf_interval=1,sched_min_interval=0,batch_sched_delay=0
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/jobcomp.txt
KillWait=15
MinJobAge=300
NodeName=${NODES[0]} NodeHostname=$host NodeAddr=127.0.0.1 Port=${PORTS[0]} CPUs=$cpus$spec1 RealMemory=$mem_mb State=UNKNOWN
NodeName=${NODES[1]} NodeHostname=$host NodeAddr=127.0.0.1 Port=${PORTS[1]} CPUs=$cpus$spec2 RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=${NODES[0]},${NODES[1]} Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$tmp" "$CONF"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_daemons() {
  if [ ! -s /etc/munge/munge.key ]; then  # the package makes one; make sure
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null || create-munge-key -f
    chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
  fi
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
  if ! alive /run/munge/munged.pid; then
    runuser -u munge -- /usr/sbin/munged
  fi
  alive "$STATE/slurmctld.pid" || /usr/sbin/slurmctld
  for n in "${NODES[@]}"; do
    alive "$STATE/slurmd-$n.pid" || /usr/sbin/slurmd -N "$n"
  done
  for _ in $(seq 1 60); do
    if [ "$(sinfo -h -o '%t' -N 2>/dev/null | grep -c -E '^(idle|mix|alloc)')" -eq ${#NODES[@]} ]
    then
      echo "Slurm is up: nodes ${NODES[*]} (sinfo; logs in $STATE)"
      return
    fi
    sleep 0.5
  done
  sinfo -N >&2 || true
  die "the nodes did not come up; see $STATE/*.log"
}

stop_pidfile() {
  local f="$1"
  alive "$f" || { rm -f "$f"; return; }
  local pid; pid="$(cat "$f")"
  kill "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

case "${1:-}" in
  up)
    [ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts daemons)"
    install_packages
    write_config
    start_daemons
    ;;
  down)
    for n in "${NODES[@]}"; do stop_pidfile "$STATE/slurmd-$n.pid"; done
    stop_pidfile "$STATE/slurmctld.pid"
    stop_pidfile /run/munge/munged.pid
    echo "Slurm is down"
    ;;
  status)
    sinfo -N
    ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac

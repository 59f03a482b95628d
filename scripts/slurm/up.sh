#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests and local trials of
# `bench run --executor slurm`. Idempotent: a second call with the cluster up does nothing.
#   - installs Debian's slurm-wlm and munge with apt-get if they are missing;
#   - writes a one-node slurm.conf (this host, its real CPU count and ~95% of its memory,
#     proctrack/linuxproc and task/none: no systemd, no cgroups);
#   - starts munged, slurmctld and slurmd by hand (no systemd), recording what it started
#     in $STATE/started so that down.sh stops exactly that and nothing else.
# Needs root. A slurm.conf that this script did not write is never overwritten.
set -euo pipefail

STATE=${LOWBIT_SLURM_STATE:-/run/lowbit-slurm}
CONF=/etc/slurm/slurm.conf
MARK='# written by lowbit-bench scripts/slurm/up.sh'

if [ "$(id -u)" -ne 0 ]; then echo "slurm/up.sh: run as root (it installs packages and starts daemons)" >&2; exit 2; fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

if [ -f "$CONF" ] && ! grep -qxF "$MARK" "$CONF"; then
  # Someone else's cluster: use it if it answers, never reconfigure or start it.
  if sinfo -h >/dev/null 2>&1; then exit 0; fi
  echo "slurm/up.sh: $CONF was not written by this script and its cluster does not answer; start it as its owner intends, or move the file away" >&2
  exit 1
fi

mkdir -p "$STATE"
touch "$STATE/started"
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# munge: no /run/munge without systemd.
install -d -o munge -g munge -m 0755 /run/munge
if ! alive /run/munge/munged.pid; then
  su -s /bin/sh munge -c 'munged --pid-file=/run/munge/munged.pid'
  grep -qx munged "$STATE/started" || echo munged >>"$STATE/started"
fi
munge -n | unmunge | grep -q 'STATUS: *Success' || { echo "slurm/up.sh: munge does not work (munge -n | unmunge)" >&2; exit 1; }

host=$(hostname -s)
{
  # The node as slurmd sees it (CPUs, sockets, cores, threads), memory at 95% so the node is never drained for having less.
  node=$(slurmd -C | head -n1)
  mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
  node=$(sed "s/RealMemory=[0-9]*/RealMemory=$((mem * 95 / 100))/" <<<"$node")
  mkdir -p /etc/slurm
  cat >"$CONF.tmp" <<CONF
$MARK
ClusterName=lowbit
SlurmctldHost=$host
AuthType=auth/munge
CredType=cred/munge
SlurmUser=slurm
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# A trivial job then takes ~1 s from sbatch to done instead of ~3 s.
SchedulerParameters=batch_sched_delay=0
# A job whose dependency can never be met is cancelled instead of pending forever.
DependencyParameters=kill_invalid_depend
MailProg=/bin/true
# Finished jobs stay visible to squeue --states=all and scontrol for an hour.
MinJobAge=3600
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
$node State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  if ! cmp -s "$CONF.tmp" "$CONF"; then mv "$CONF.tmp" "$CONF"; else rm -f "$CONF.tmp"; fi
}

install -d -o slurm -g slurm /var/spool/slurmctld /var/log/slurm
install -d /var/spool/slurmd
chown slurm:slurm "$STATE"

if ! alive "$STATE/slurmctld.pid"; then
  slurmctld -c -i
  grep -qx slurmctld "$STATE/started" || echo slurmctld >>"$STATE/started"
fi
if ! alive "$STATE/slurmd.pid"; then
  slurmd
  grep -qx slurmd "$STATE/started" || echo slurmd >>"$STATE/started"
fi

# Ready when the node is idle (or already running jobs).
for _ in $(seq 1 60); do
  st=$(sinfo -h -N -o '%T' 2>/dev/null | head -n1 || true)
  case "$st" in idle|mixed|allocated|completing) exit 0 ;; esac
  sleep 0.25
done
echo "slurm/up.sh: the node did not come up (state '${st:-none}'); see /var/log/slurm/slurmctld.log and slurmd.log" >&2
exit 1

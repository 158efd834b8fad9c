#!/usr/bin/env bash
# Compare (default) or apply (--apply) the kernel settings in
# sysctl.d/99-myriad.conf and install it with limits.d/myriad.conf.
# The conf file is the only source of values and reasons; see its header.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONF="$HERE/sysctl.d/99-myriad.conf"
LIMITS="$HERE/limits.d/myriad.conf"
CONF_DEST=/etc/sysctl.d/99-myriad.conf
LIMITS_DEST=/etc/security/limits.d/myriad.conf
PROC_SYS=/proc/sys

usage() {
    cat <<EOF
Usage: $(basename "$0") [--apply] [--role server|client|both]

Without --apply (the default) nothing is changed: for every key in
  $CONF
prints the current value, the wanted value, whether it would change, and the
reason (the first comment line above the key).

  --apply         write the values with sysctl -w (needs root), then install
                    $CONF_DEST
                    $LIMITS_DEST
                  Keys missing on this kernel are skipped. Safe to run again.
  --role ROLE     server: leave out client-only keys (ephemeral ports, TIME_WAIT
                  reuse, FIN timeout); client: load hosts; both (default).
  -h, --help      this text.

Exit status: 0 done, 1 something could not be set (or, in a dry run, could
not be), 2 bad usage or --apply without root.
EOF
}

apply=0
role=both
while (($#)); do
    case $1 in
        --apply) apply=1 ;;
        --role)
            [[ $# -ge 2 ]] || { echo "error: --role needs server, client or both" >&2; exit 2; }
            role=$2
            shift
            ;;
        --role=*) role=${1#--role=} ;;
        -h | --help) usage; exit 0 ;;
        *) echo "error: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case $role in
    server | client | both) ;;
    *) echo "error: --role must be server, client or both, not '$role'" >&2; exit 2 ;;
esac
if ((apply)) && [[ $(id -u) -ne 0 ]]; then
    echo "error: --apply writes kernel settings and files under /etc: run it as root" \
        "(sudo $0 --apply). Without --apply it only compares." >&2
    exit 2
fi
[[ -r $CONF ]] || { echo "error: cannot read $CONF" >&2; exit 2; }
[[ -r $LIMITS ]] || { echo "error: cannot read $LIMITS" >&2; exit 2; }

# ---- parse the conf file ----------------------------------------------------
# Per key: value, reason (first line of the comment block above it), tags.
# installed = the file as it will be installed for this role (client-only keys
# commented out for --role server).
keys=() values=() reasons=() tags=()
installed=""
reason="" tagline="" in_block=0
trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; s=${s%"${s##*[![:space:]]}"}; printf '%s' "$s"; }
while IFS= read -r line || [[ -n $line ]]; do
    t=$(trim "$line")
    out=$line
    if [[ -z $t ]]; then
        reason="" tagline="" in_block=0
    elif [[ $t == \#* || $t == \;* ]]; then
        text=$(trim "${t:1}")
        if [[ $text == apply.sh:* ]]; then
            tagline=${text#apply.sh:}
        elif ((!in_block)); then
            reason=$text
        fi
        in_block=1
    elif [[ $t == *=* ]]; then
        k=$(trim "${t%%=*}")
        k=${k#-}
        v=$(trim "${t#*=}")
        read -ra vparts <<<"$v"
        keys+=("$k") values+=("${vparts[*]}") reasons+=("${reason:-(no reason in conf)}") tags+=(" $tagline ")
        if [[ $role == server && " $tagline " == *" client "* ]]; then
            out="# (client-only, left out by apply.sh --role server) $t"
        fi
        reason="" tagline="" in_block=0
    fi
    installed+="$out"$'\n'
done <"$CONF"

# ---- compare / apply each key ------------------------------------------------
read_key() { # prints the value with whitespace squeezed, or fails
    local f="$PROC_SYS/${1//.//}" parts
    [[ -r $f ]] || return 1
    read -ra parts <"$f" || [[ ${#parts[@]} -gt 0 ]] || return 1
    printf '%s' "${parts[*]}"
}
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
# status of current vs wanted: same | higher (floor keys only) | differs
compare() { # $1 current, $2 wanted, $3 floor(0/1)
    if [[ $1 == "$2" ]]; then echo same
    elif (($3)) && is_uint "$1" && is_uint "$2" && ((${#1} > ${#2} || (${#1} == ${#2}) && $1 > $2)); then echo higher
    else echo differs
    fi
}

changed=0 failed=0 would=0 skipped=0
# Other sysctl files (each once, symlinks resolved), to warn about conflicts.
other_files=()
for f in /etc/sysctl.conf /etc/sysctl.d/*.conf /run/sysctl.d/*.conf /usr/local/lib/sysctl.d/*.conf /usr/lib/sysctl.d/*.conf; do
    [[ -f $f ]] || continue
    r=$(readlink -f "$f")
    [[ $r != "$(readlink -f "$CONF_DEST")" && " ${other_files[*]} " != *" $r "* ]] && other_files+=("$r")
done
mode=$([[ $apply == 1 ]] && echo "applying" || echo "dry run, nothing is changed")
printf 'Myriad kernel settings (%s; role %s; %s)\n\n' "$mode" "$role" "$CONF"
printf '%-34s %-26s %-26s %s\n' KEY CURRENT WANTED STATUS
for i in "${!keys[@]}"; do
    k=${keys[$i]} want=${values[$i]} why=${reasons[$i]} tg=${tags[$i]}
    err="" now="" floor=0
    [[ $tg == *" floor "* ]] && floor=1
    if [[ $role == server && $tg == *" client "* ]]; then
        cur=$(read_key "$k" || echo "-")
        status="skipped: client-only (--role server)"
        skipped=$((skipped + 1))
    elif ! cur=$(read_key "$k"); then
        cur="(missing)"
        case $k in
            net.netfilter.*) status="skipped: not present (nf_conntrack not loaded, so nothing is tracked)" ;;
            kernel.io_uring_disabled) status="skipped: not on this kernel (before 6.6: io_uring is not switchable)" ;;
            *) status="skipped: not here (older kernel, or a container: host-wide keys are set on the host)" ;;
        esac
        skipped=$((skipped + 1))
    else
        case $(compare "$cur" "$want" "$floor") in
            same) status="ok: already set" ;;
            higher) status="ok: already higher, kept" ;;
            differs)
                if [[ $(stat -c %A "$PROC_SYS/${k//.//}") != *w* ]]; then
                    status="skipped: read-only here (a container? host-wide keys are set on the host)"
                    skipped=$((skipped + 1))
                elif ((!apply)); then
                    status="would change"
                    would=$((would + 1))
                elif err=$(sysctl -q -w "$k=$want" 2>&1) && now=$(read_key "$k") && [[ $now == "$want" ]]; then
                    status="changed"
                    changed=$((changed + 1))
                else
                    status="FAILED: ${err:-kernel kept ${now:-?}}"
                    failed=$((failed + 1))
                fi
                ;;
        esac
    fi
    printf '%-34s %-26s %-26s %s\n' "$k" "$cur" "$want" "$status"
    printf '%-34s why: %s\n' "" "$why"
    # Another sysctl file setting the same key decides the value at boot.
    for f in "${other_files[@]}"; do
        other=$(sed -n "s/^[[:space:]]*-\{0,1\}${k//./[./]}[[:space:]]*=[[:space:]]*//p" "$f" | tail -n1)
        [[ -n $other ]] || continue
        read -ra oparts <<<"$other"
        [[ ${oparts[*]} == "$want" ]] || printf '%-34s note: %s sets %s; at boot the file applied last wins\n' "" "$f" "${oparts[*]}"
    done
done

# ---- install the files ---------------------------------------------------------
file_state() { # $1 dest, $2 wanted content
    if [[ ! -e $1 ]]; then echo missing
    elif [[ $(cat "$1"; echo x) == "$2"x ]]; then echo same
    else echo differs
    fi
}
max_hard_nofile() {
    awk '$1 !~ /^#/ && $3 == "nofile" && ($2 == "hard" || $2 == "-") && $4 ~ /^[0-9]+$/ { if ($4 > m) m = $4 } END { print m + 0 }' "$1"
}
install_file() { # $1 dest, $2 content, $3 label
    local state
    state=$(file_state "$1" "$2")
    if [[ $state == same ]]; then
        printf '%-34s ok: already installed (%s)\n' "$1" "$3"
    elif ((!apply)); then
        printf '%-34s would %s (%s)\n' "$1" "$([[ $state == missing ]] && echo install || echo update)" "$3"
        would=$((would + 1))
    else
        mkdir -p "$(dirname "$1")"
        printf '%s' "$2" >"$1.myriad-tmp" && chmod 0644 "$1.myriad-tmp" && mv -f "$1.myriad-tmp" "$1"
        printf '%-34s %s (%s)\n' "$1" "$([[ $state == missing ]] && echo installed || echo updated)" "$3"
        changed=$((changed + 1))
    fi
}
echo
install_file "$CONF_DEST" "$installed" "sysctl settings at boot"
limits_content=$(cat "$LIMITS"; echo x)
limits_content=${limits_content%x}
hard=$(max_hard_nofile "$LIMITS")
nr_open=$(read_key fs.nr_open || echo 0)
if ((!apply)); then # the dry run assumes --apply raises fs.nr_open first
    for i in "${!keys[@]}"; do
        [[ ${keys[$i]} == fs.nr_open ]] && ((values[i] > nr_open)) && nr_open=${values[$i]}
    done
fi
if ((hard > nr_open)); then
    # pam_limits could not set it, and can then refuse the user's login.
    printf '%-34s NOT installed: hard nofile %s > fs.nr_open %s (raise fs.nr_open first)\n' "$LIMITS_DEST" "$hard" "$nr_open"
    failed=$((failed + 1))
else
    install_file "$LIMITS_DEST" "$limits_content" "nofile for new logins"
fi

# ---- when do the limits take effect ------------------------------------------------
soft_n=$(ulimit -Sn) hard_n=$(ulimit -Hn)
cap_eff=$(awk '/^CapEff:/ { print $2 }' /proc/$$/status 2>/dev/null || true)
has_sys_resource=0
[[ -n $cap_eff ]] && (((16#$cap_eff >> 24) & 1)) && has_sys_resource=1

cat <<EOF

When things take effect:
  - sysctls: at once for new sockets and new setrlimit() calls. A listener keeps
    the backlog it got at listen(): restart Myriad after raising somaxconn.
  - $LIMITS_DEST: only at the NEXT login of that user (new ssh session,
    login, or 'su - myriad'). Shells already open, and everything started from
    them, keep their old limits.
  - the service ignores limits.d; its limit is LimitNOFILE= in myriad.service:
    after installing or changing the unit run
      systemctl daemon-reload && systemctl restart myriad
    then check: grep 'open files' /proc/\$(systemctl show -p MainPID --value myriad)/limits
  - this shell: ulimit -Sn $soft_n, ulimit -Hn $hard_n.
EOF
if ((has_sys_resource)); then
    echo "    It has CAP_SYS_RESOURCE, so 'ulimit -Hn N' (N <= fs.nr_open) works here."
else
    echo "    It lacks CAP_SYS_RESOURCE (even as root), so 'ulimit -Hn' cannot go above $hard_n here"
    echo "    or in anything started from here, whatever fs.nr_open says. A higher limit must come"
    echo "    from a parent that has the capability (a new login, the systemd unit). If none has it,"
    echo "    as on the dev machines: io_uring direct descriptors (per-ring tables) or more processes."
fi
if command -v pgrep >/dev/null && pid=$(pgrep -x myriad | head -n1) && [[ -n $pid ]]; then
    echo "  - running myriad (pid $pid): $(grep 'open files' "/proc/$pid/limits" 2>/dev/null | tr -s ' ' || echo 'limits unreadable')"
fi
if [[ -r /proc/sys/net/netfilter/nf_conntrack_count ]]; then
    echo "  - conntrack: $(cat /proc/sys/net/netfilter/nf_conntrack_count) connections tracked now; if it stays 0 under load,"
    echo "    no rule tracks them and nf_conntrack_max does not matter on this host."
fi

echo
if ((apply)); then
    echo "Summary: $changed changed, $skipped skipped, $failed failed."
    ((failed == 0)) || exit 1
else
    echo "Summary: $would change(s) pending, $skipped skipped, $failed problem(s)." \
        "Apply with: sudo $0 --apply$([[ $role == both ]] || echo " --role $role")"
    ((failed == 0)) || exit 1
fi

#!/usr/bin/env bash
# Creates (idempotently) the local account the OpenSSH interop tests log in to with a password or
# keyboard-interactive: user `effectssh`, home /home/effectssh, shell /bin/bash, and a random password kept in a
# root-only file that test/interop/sshd.ts reads. Re-running keeps the stored password and re-applies it.
#
#   sudo scripts/setup-test-user.sh            # or as root, e.g. from .ci/run
#
# Environment: EFFECT_SSH_TEST_USER (default effectssh), EFFECT_SSH_TEST_PASSWORD_FILE
# (default /var/lib/effect-ssh-test/password). Changing them needs the same variables when the tests run.
set -euo pipefail

user="${EFFECT_SSH_TEST_USER:-effectssh}"
password_file="${EFFECT_SSH_TEST_PASSWORD_FILE:-/var/lib/effect-ssh-test/password}"

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo --preserve-env=EFFECT_SSH_TEST_USER,EFFECT_SSH_TEST_PASSWORD_FILE "$0" "$@"
  fi
  echo "setup-test-user: must run as root (no sudo available)" >&2
  exit 1
fi

if ! id -u "$user" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash --comment "effect-ssh interop tests" "$user"
  echo "setup-test-user: created account $user"
fi

password_dir="$(dirname "$password_file")"
install -d -m 0700 -o root -g root "$password_dir"
if [ ! -s "$password_file" ]; then
  # 24 alphanumeric characters: no quoting or shell-escaping concerns anywhere the tests pass it along.
  password="$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 24 || true)"
  if [ "${#password}" -ne 24 ]; then
    echo "setup-test-user: could not generate a password" >&2
    exit 1
  fi
  (umask 077 && printf '%s\n' "$password" >"$password_file")
fi
chown root:root "$password_file"
chmod 0600 "$password_file"

password="$(head -n 1 "$password_file")"
printf '%s:%s\n' "$user" "$password" | chpasswd
# A fresh account may carry an expiry policy that would make sshd demand a password change.
chage --mindays 0 --maxdays 99999 --inactive -1 --expiredate -1 "$user"
echo "setup-test-user: account $user ready (password in $password_file)"

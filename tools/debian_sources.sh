# tools/debian_sources.sh — sourced, not run: write_debian_sources ROOT MIRROR writes a fresh
# Debian 12 install's apt sources into the root made by debootstrap (the release, its updates
# and security updates) in place of debootstrap's one-line sources.list. Used by
# tools/fresh_root.sh (CI's root) and docker/test.sh (the image's base), which must agree.
write_debian_sources() {
  local root=$1 mirror=$2
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
}

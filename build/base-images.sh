#!/usr/bin/env bash
# Build the two base images from Debian 13 (trixie) packages, without pulling from any registry:
#   mcp-orchestration/debian:13-slim                        like debian:13-slim (debootstrap minbase,
#                                                           slimmed the way debuerreotype does it, docker
#                                                           import), plus python3-venv for the image's builder
#   mcp-orchestration/distroless-python3-debian13:nonroot   like gcr.io/distroless/python3-debian13:nonroot,
#                                                           assembled by build/runtime-base.Dockerfile
# Usage: build/base-images.sh
#   ARCH=<debian arch>       default: the host's (another arch needs binfmt/qemu-user-static)
#   FORCE=1                  rebuild images that already exist (the debootstrap cache is kept;
#                            delete build/out/base-images/<arch>/debootstrap* to redo it; a cache
#                            from before signatures were enforced, debootstrap.done, is redone)
#   SOURCE_DATE_EPOCH=<s>    file-time clamp; default: newest Debian changelog in each image
#   MIRROR, SECURITY_MIRROR  Debian archives (default deb.debian.org)
#   KEYRING=<file>           keys the archive's Release file must be signed with (default: Debian's
#                            archive keyring, package debian-archive-keyring, installed if missing)
# Needs root, debootstrap and a running Docker engine (BuildKit).
# Signatures fail closed: debootstrap gets --keyring and --force-check-gpg, so an unsigned or
# wrongly signed Release file, or a missing keyring, stops the build; without them it only warns
# and goes on unverified when the keyring is absent and MIRROR is set. Inside the rootfs, apt
# verifies against the keyring debootstrap installed (Signed-By below; nothing is marked trusted).
set -euo pipefail
[ "$(id -u)" -eq 0 ] || exec sudo --preserve-env=ARCH,FORCE,SOURCE_DATE_EPOCH,MIRROR,SECURITY_MIRROR,KEYRING "$0" "$@"  # debootstrap and chroot need root

cd "$(dirname "$0")/.."
ARCH="${ARCH:-$(dpkg --print-architecture)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
KEYRING="${KEYRING:-$DEBIAN_KEYRING}"
FORCE="${FORCE:-0}"
OUT="build/out/base-images/$ARCH" # other tools share build/out
BUILDER_TAG=mcp-orchestration/debian:13-slim
RUNTIME_TAG=mcp-orchestration/distroless-python3-debian13:nonroot
PATH_ENV=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
docker=/usr/bin/docker # the Debian client, which has BuildKit

case "$ARCH" in
  armhf) PLATFORM=linux/arm/v7 ;;
  ppc64el) PLATFORM=linux/ppc64le ;;
  *) PLATFORM="linux/$ARCH" ;;
esac

# True when the image exists and FORCE is not set.
have_image() { [[ "$FORCE" != 1 ]] && $docker image inspect "$1" >/dev/null 2>&1; }

summary() {
  $docker image inspect -f '{{.Id}} {{.Size}}' "$1" | {
    read -r id size
    echo "$1 $id $(numfmt --to=iec --suffix=B "$size")"
  }
}

# Newest mtime of a Debian changelog under a root: the date of the newest package in it.
newest_changelog() {
  find "$1/usr/share/doc" -name 'changelog*' -printf '%T@\n' | sort -n | tail -n 1 | cut -d. -f1
}

# Debian's archive keyring, installed the way build/docker-engine.sh installs packages when it is
# missing; another KEYRING must exist already. Too old a keyring (without trixie's keys) makes
# debootstrap fail on the signature, as it should.
ensure_keyring() {
  [[ -e "$KEYRING" ]] && return
  if [[ "$KEYRING" != "$DEBIAN_KEYRING" ]]; then
    echo "base-images.sh: KEYRING=$KEYRING does not exist" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debian-archive-keyring >/dev/null
}

build_builder() {
  local cache="$OUT/debootstrap" root="$OUT/rootfs-slim"

  # 1. debootstrap once, verifying the archive's signature (fails closed); cached under build/out.
  if [[ ! -e "$cache.verified" ]]; then
    ensure_keyring
    rm -rf "$cache" "$cache.done"
    mkdir -p "$OUT"
    debootstrap --keyring="$KEYRING" --force-check-gpg --variant=minbase --arch="$ARCH" trixie "$cache" "$MIRROR"
    touch "$cache.verified"
  fi
  rm -rf "$root"
  cp -a "$cache" "$root"

  # 2. APT sources and the container tweaks of the official image (debuerreotype-minimizing-config).
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.pgp

Types: deb
URIs: $SECURITY_MIRROR
Suites: trixie-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.pgp
EOF
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
  local clean='"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true";'
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<EOF
DPkg::Post-Invoke { $clean };
APT::Update::Post-Invoke { $clean };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
  echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
  echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"

  # 3. Point releases and security updates, as the official image has them.
  chroot "$root" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get full-upgrade -yqq -o Dpkg::Use-Pty=0
  # The one package the image's builder stage needs (Dockerfile.distroless), so that the image build
  # reads no package index: a rebuild on these bases is the same build, whatever Debian has published.
  DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -yqq --no-install-recommends \
    -o Dpkg::Use-Pty=0 python3-venv >/dev/null

  local epoch="${SOURCE_DATE_EPOCH:-$(newest_changelog "$root")}"

  # 4. Slim (debuerreotype-slimify): no docs but copyrights, no man/info pages, no translations;
  #    a dpkg config keeps later installs just as slim. find runs in the chroot so that absolute
  #    symlinks (alternatives) resolve inside the rootfs.
  local excludes=(/usr/share/doc /usr/share/info /usr/share/linda /usr/share/lintian/overrides /usr/share/locale /usr/share/man)
  local includes=('/usr/share/doc/*/copyright' /usr/share/locale/locale.alias /usr/share/locale/languages
    /usr/share/locale/all_languages '/usr/share/locale/currency/*' '/usr/share/locale/l10n/*')
  {
    printf 'path-exclude %s/*\n' "${excludes[@]}"
    printf 'path-include %s\n' "${includes[@]}"
  } >"$root/etc/dpkg/dpkg.cfg.d/docker"
  local keep=(-false) dir mandirs
  # man/manN directories are kept empty: some postinsts (update-alternatives) need them
  mapfile -t mandirs < <(find "$root/usr/share/man" -maxdepth 1 -name 'man[0-9]')
  for dir in "${includes[@]}"; do keep+=(-o -path "$dir"); done
  for dir in "${excludes[@]}"; do
    [[ -d "$root$dir" ]] || continue
    chroot "$root" find "$dir" -mindepth 1 -not -type d -not -type l -not \( "${keep[@]}" \) -delete
    # then dangling symlinks and empty directories, until none are left
    while [[ -n "$(chroot "$root" find "$dir" -depth -mindepth 1 \( -empty -o -xtype l \) -print -delete)" ]]; do :; done
  done
  [[ ${#mandirs[@]} -eq 0 ]] || mkdir -p "${mandirs[@]}"

  # 5. No logs, caches, host files or machine identity (debuerreotype-fixup, .tar-exclude).
  rm -f "$root"/var/log/{dpkg.log,bootstrap.log,alternatives.log,apt/history.log,apt/term.log} \
    "$root/var/cache/ldconfig/aux-cache" "$root/etc/machine-id" \
    "$root/etc/hostname" "$root/etc/resolv.conf" "$root/etc/apt/apt.conf.d/01autoremove-kernels"

  # /etc/shadow "last changed" days, clamped to the epoch as well (https://bugs.debian.org/857803)
  awk -F: -v OFS=: -v day=$((epoch / 86400)) '$3 > day { $3 = day } 1' "$root/etc/shadow" >"$root/etc/shadow.new"
  cat "$root/etc/shadow.new" >"$root/etc/shadow" && rm "$root/etc/shadow.new"

  # 6. Reproducible tar (sorted, numeric owners, times clamped) into one image layer.
  tar --create --directory "$root" --numeric-owner --sort=name \
    --mtime="@$epoch" --clamp-mtime \
    --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
    --exclude='./var/cache/apt/*' --exclude='./var/lib/apt/lists/*' . |
    $docker import --platform "$PLATFORM" \
      --change 'CMD ["bash"]' --change "ENV PATH=$PATH_ENV" \
      --message "debootstrap minbase trixie $ARCH, SOURCE_DATE_EPOCH=$epoch" - "$BUILDER_TAG" >/dev/null
}

build_runtime() {
  local opts=()
  [[ "$FORCE" == 1 ]] && opts+=(--no-cache) # re-download the packages too
  # Empty build context (Dockerfile on stdin): the Dockerfile copies nothing from the host.
  DOCKER_BUILDKIT=1 $docker build --network=host --platform "$PLATFORM" "${opts[@]}" \
    --build-arg BUILDER_IMAGE="$BUILDER_TAG" \
    --build-arg SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-}" \
    --tag "$RUNTIME_TAG" - <build/runtime-base.Dockerfile
}

have_image "$BUILDER_TAG" || build_builder
have_image "$RUNTIME_TAG" || build_runtime
summary "$BUILDER_TAG"
summary "$RUNTIME_TAG"

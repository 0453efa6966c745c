# Runtime base equal to gcr.io/distroless/python3-debian13:nonroot, assembled from Debian 13 packages
# the way distroless does it: each .deb unpacked as is (no maintainer scripts), plus its control file
# under /var/lib/dpkg/status.d/ so that SBOM/CVE scanners (syft, trivy) see what is inside.
# Built by build/base-images.sh; needs `docker build --network=host` (apt-get in the first stage).
#
# Package set, from github.com/GoogleContainerTools/distroless @ cd080764 (2026-08-21). The python3
# image is python3/config.bzl PYTHON_PACKAGES["debian13"] on top of //cc, on top of //base, on top of
# //static (python3/python.bzl, cc/cc.bzl, base/base.bzl, static/static.bzl). Distroless takes exactly
# these packages, without resolving dependencies (private/repos/deb/trixie*.yaml), so do we, but for
# OMIT_PACKAGES, and then trim files nothing here reads (SECURITY.md, "What the image leaves out").
ARG BUILDER_IMAGE=mcp-orchestration/debian:13-slim

FROM ${BUILDER_IMAGE} AS assemble
#   static/config.bzl STATIC_PACKAGES["debian13"]
ARG STATIC_PACKAGES="base-files netbase tzdata tzdata-legacy media-types"
#   base/config.bzl BASE_PACKAGES["debian13"]
ARG BASE_PACKAGES="libc6 libssl3t64 libzstd1 zlib1g"
#   cc/config.bzl CC_PACKAGES["debian13"]
ARG CC_PACKAGES="libgomp1 libstdc++6 libgcc-s1 gcc-14-base"
#   python3/config.bzl PYTHON_PACKAGES["debian13"]
ARG PYTHON_PACKAGES="libbz2-1.0 libdb5.3t64 libexpat1 liblzma5 libsqlite3-0 libuuid1 libncursesw6 \
    libtinfo6 zlib1g libcom-err2 libcrypt1 libc-bin libgssapi-krb5-2 libk5crypto3 libkeyutils1 \
    libkrb5-3 libkrb5support0 libnsl2 libreadline8t64 libtirpc3t64 libffi8 libpython3.13-minimal \
    libpython3.13-stdlib python3.13-minimal python3.13-venv"
# Packages of that set whose files nothing in the image loads: the C++ runtime and OpenMP (no C++
# or OpenMP code here), libcrypt (Python 3.13 has no crypt module), libnsl/libtirpc and the Kerberos
# libraries they pull in (no NIS, no RPC, no GSSAPI: Python 3.13 has no nis module), and
# tzdata-legacy (only the leap-second "right/" zones). Every ELF file left is checked below: a
# library it needs that no package left provides fails the build.
ARG OMIT_PACKAGES="libstdc++6 libgomp1 libcrypt1 libnsl2 libtirpc3t64 libgssapi-krb5-2 libk5crypto3 \
    libkrb5-3 libkrb5support0 libkeyutils1 libcom-err2 tzdata-legacy"
# File-time clamp; empty: the newest Debian changelog in the image.
ARG SOURCE_DATE_EPOCH=

# Download. ca-certificates is not unpacked, only its bundle is made (common:cacerts, see below).
# bash with pipefail: a failing command in a pipeline fails the build (hadolint DL4006).
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /debs
RUN set -eu; chown _apt /debs; \
    packages=(); \
    for pkg in $STATIC_PACKAGES $BASE_PACKAGES $CC_PACKAGES $PYTHON_PACKAGES; do \
      [[ " $OMIT_PACKAGES " == *" $pkg "* ]] || packages+=("$pkg"); \
    done; \
    apt-get update -qq; \
    apt-get download -qq "${packages[@]}" ca-certificates

# Unpack each package and record its control file (+ md5sums), as distroless' dpkg_statusd does,
# plus the .deb's SHA-256 (apt checked it against the signed index) for the image's SBOM.
RUN set -eu; mkdir -p /rootfs/var/lib/dpkg/status.d; \
    for deb in *.deb; do \
      pkg="$(dpkg-deb --field "$deb" Package)"; \
      { dpkg-deb --info "$deb" control; echo "SHA256: $(sha256sum "$deb" | cut -d' ' -f1)"; } \
        >"/rootfs/var/lib/dpkg/status.d/$pkg"; \
      dpkg-deb --info "$deb" md5sums >"/rootfs/var/lib/dpkg/status.d/$pkg.md5sums" 2>/dev/null \
        || rm "/rootfs/var/lib/dpkg/status.d/$pkg.md5sums"; \
      if [ "$pkg" = ca-certificates ]; then dpkg-deb -x "$deb" /ca; else dpkg-deb -x "$deb" /rootfs; fi; \
      echo "$pkg $(dpkg-deb --field "$deb" Version)"; \
    done

# The files distroless adds (common/BUILD.bazel, static/, python3/python.bzl), the trim, then checks.
WORKDIR /rootfs
RUN set -eu; \
    epoch="${SOURCE_DATE_EPOCH:-$(find usr/share/doc -name 'changelog*' -printf '%T@\n' | sort -n | tail -n 1 | cut -d. -f1)}"; \
    # Trim: documentation but the copyright files licences require (debuerreotype-slimify), glibc's
    # iconv modules (Python has its own codecs; UTF-8 is built into glibc), glibc's tools (ldconfig,
    # localedef, iconv, ...; ld.so.cache is made below), CPython's test suite and test extensions.
    find usr/share/doc -mindepth 2 ! -type d ! -name copyright -delete; \
    rm -rf usr/share/man usr/share/info usr/share/lintian usr/lib/*/gconv usr/lib/python3.13/test \
      usr/bin/{getconf,getent,iconv,ldd,locale,localedef,pldd,tzselect,zdump} usr/sbin/{iconvconfig,ldconfig,zic} \
      usr/lib/python3.13/lib-dynload/{_test,_ctypes_test,_xxtestfuzz,xxlimited,xxsubtype}*; \
    find usr/share/doc -depth -type d -empty -delete; \
    # each md5sums file lists exactly the files still there (dpkg --verify style checks stay true)
    for sums in var/lib/dpkg/status.d/*.md5sums; do \
      while read -r sum path; do [[ ! -e "$path" ]] || echo "$sum  $path"; done <"$sums" >"$sums.new"; \
      mv "$sums.new" "$sums"; \
    done; \
    # CA bundle: every certificate of the package, concatenated (rules_distroless cacerts.sh)
    mkdir -p etc/ssl/certs usr/share/doc/ca-certificates; \
    find /ca/usr/share/ca-certificates -type f -name '*.crt' | LC_ALL=C sort | xargs cat >etc/ssl/certs/ca-certificates.crt; \
    cp /ca/usr/share/doc/ca-certificates/copyright usr/share/doc/ca-certificates/; \
    printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
      'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
      'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >etc/passwd; \
    printf '%s\n' root:x:0: nobody:x:65534: tty:x:5: staff:x:50: nonroot:x:65532: >etc/group; \
    printf '%s\n' 'passwd:         compat' 'group:          compat' 'shadow:         compat' \
      'gshadow:        files' '' 'hosts:          files dns' 'networks:       files' '' \
      'protocols:      db files' 'services:       db files' 'ethers:         db files' \
      'rpc:            db files' '' 'netgroup:       nis' >etc/nsswitch.conf; \
    install -d -m 0700 root; install -d -m 0755 home; install -d -m 0700 -o 65532 -g 65532 home/nonroot; \
    install -d -m 1777 tmp; \
    ln -sf /usr/bin/python3.13 usr/bin/python3; ln -sf /usr/bin/python3.13 usr/bin/python; \
    # ld.so.cache (distroless ships one generated by ldconfig in the image)
    ldconfig -r /rootfs; rm -rf var/cache/ldconfig; \
    # merged /usr, and no shell of any kind
    for d in bin lib lib64 sbin; do [ -L "$d" ] || { echo "/$d is not a symlink" >&2; exit 1; }; done; \
    for sh in sh dash bash rbash busybox; do \
      [ ! -e "usr/bin/$sh" ] && [ ! -L "usr/bin/$sh" ] || { echo "shell found: /usr/bin/$sh" >&2; exit 1; }; \
    done; \
    # every ELF file finds every library it needs in the image: the image's own loader lists them
    # (--list, as ldd does), and fails on one it cannot find
    loader="$(echo usr/lib/*/ld-linux*.so.*)"; \
    find usr -type f -exec sh -c 'head -c4 "$1" | grep -q ELF' _ {} \; -print | LC_ALL=C sort | while read -r elf; do \
      chroot . "/$loader" --list "/$elf" >/dev/null || { echo "unresolved: /$elf" >&2; exit 1; }; \
    done; \
    find . -newermt "@$epoch" -exec touch --no-dereference --date="@$epoch" {} +

FROM scratch
COPY --from=assemble /rootfs /
# distroless sets USER "65532"; the group is the same (65532 in /etc/passwd)
USER 65532:65532
WORKDIR /home/nonroot
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    LANG=C.UTF-8
ENTRYPOINT ["/usr/bin/python3.13"]

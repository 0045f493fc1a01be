#!/usr/bin/env bash
# Makes sure Fashion-MNIST's four idx .gz files are in $1 (default /usr/share/datasets/fashion-mnist).
# Debian ships them as the package dataset-fashion-mnist; nothing is downloaded from dataset hosts.
set -euo pipefail
dir=${1:-/usr/share/datasets/fashion-mnist}
files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
have_all() { for f in "${files[@]}"; do [[ -f $dir/$f ]] || return 1; done; }
have_all && exit 0
if [[ $dir == /usr/share/datasets/fashion-mnist ]] && command -v apt-get >/dev/null; then
  echo "Fashion-MNIST not found in $dir; installing Debian's dataset-fashion-mnist ..." >&2
  if [[ $(id -u) == 0 ]]; then apt-get install -y -q dataset-fashion-mnist >&2 || true
  elif command -v sudo >/dev/null; then sudo apt-get install -y -q dataset-fashion-mnist >&2 || true; fi
fi
have_all && exit 0
cat >&2 <<MSG
Fashion-MNIST is not in $dir and could not be installed.
  - On Debian/Ubuntu:   sudo apt-get install dataset-fashion-mnist
  - Or put ${files[*]} in a folder and run:  make demo FMNIST=/that/folder
  - Or use CIFAR-10 instead:  .venv/bin/lowmode-preprocess build --source cifar10 --input cifar-10-python.tar.gz --out data/cifar10
MSG
exit 1

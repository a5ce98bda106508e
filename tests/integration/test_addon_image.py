"""The Home Assistant add-on image test: runs scripts/check-image.sh
--addon, which rebuilds the final stage of cb2mqtt/Dockerfile with
debootstrap (the tree of it.test_image plus cb2mqtt/runtime-packages.txt,
cached as a second layer under CBEV_BUILD_DIR/image-cache) and runs the
add-on's entrypoint there under chroot as root, as the Supervisor starts
it, with a root-owned /data/options.json and a fake Supervisor serving the
broker: the bridge must run as uid 10001, publish an event, pass
--healthcheck as root, and stop with exit 0 on SIGTERM. Exit 77 (skipped)
only when Debian's packages cannot be reached.
"""
import os
import subprocess
import sys

SRC = os.environ["CBEV_SOURCE_DIR"]
BUILD = os.environ["CBEV_BUILD_DIR"]


def main():
    script = os.path.join(SRC, "scripts", "check-image.sh")
    rc = subprocess.call(["bash", script, "--addon", "--build-dir", BUILD])
    if rc == 77:
        print("SKIP: check-image.sh could not reach Debian's packages")
    return rc


if __name__ == "__main__":
    sys.exit(main())

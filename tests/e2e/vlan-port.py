#!/usr/bin/env python3
"""The switch port of the e2e's VLAN scenario (cargo xtask e2e, docs/TESTING.md).

A trunk port towards the guest and an access port in one VLAN towards the server: frames from
the guest (QEMU's `-netdev socket,udp=`, one frame per datagram) reach the server's tap only
when tagged with the VLAN, and lose the tag on the way; the server's frames get the tag on the
way back. Untagged or other-VLAN frames from the guest are dropped and logged. It stands in for a
VLAN interface on the host because this machine's kernel has no 8021q (CONFIG_VLAN_8021Q is not
set) and no bridge VLAN filtering; the guest's side is the real kernel's 8021q.

usage: vlan-port.py TAP VID LISTEN_PORT GUEST_PORT
"""
import fcntl
import os
import select
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000


def main():
    tap, vid, listen, guest = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", tap.encode(), IFF_TAP | IFF_NO_PI))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", listen))
    tag = struct.pack("!HH", 0x8100, vid)
    tagged = dropped = 0
    print(f"vlan-port: {tap} is VLAN {vid} untagged; the guest's trunk on udp {listen}", flush=True)
    while True:
        ready, _, _ = select.select([fd, sock], [], [])
        if sock in ready:
            frame, _ = sock.recvfrom(65536)
            is_ours = (
                len(frame) >= 18
                and frame[12:14] == b"\x81\x00"
                and struct.unpack("!H", frame[14:16])[0] & 0xFFF == vid
            )
            if is_ours:
                os.write(fd, frame[:12] + frame[16:])
                tagged += 1
                if tagged in (1, 10, 100) or tagged % 1000 == 0:
                    print(f"vlan-port: forwarded {tagged} tagged frames", flush=True)
            else:
                dropped += 1
                kind = frame[12:14].hex() if len(frame) >= 14 else "short"
                print(f"vlan-port: dropped frame {dropped} from the guest (ethertype {kind}, not VLAN {vid})", flush=True)
        if fd in ready:
            frame = os.read(fd, 65536)
            sock.sendto(frame[:12] + tag + frame[12:], ("127.0.0.1", guest))


if __name__ == "__main__":
    main()

# Captures the rtnetlink replies in this folder, whole datagrams as the kernel
# sent them (NAME-N is the Nth datagram of an exchange), in a private network
# namespace that disappears with the process, devices and all:
#
#   unshare -n python3 capture.py DIR        (as root)
#
# The committed files came from Linux 6.18 (x86_64); tap0's MAC was
# 22:84:ee:7b:26:0d and uid/gid 1000 its owner and group.
import socket, struct, subprocess, os, sys
out = sys.argv[1]
def sh(cmd): subprocess.run(cmd, shell=True, check=True)
sh("ip link set lo up")
sh("ip tuntap add dev tap0 mode tap multi_queue user 1000 group 1000")
sh("ip tuntap add dev tun0 mode tun vnet_hdr")
sh("ip link set tap0 up")
sh("ip addr add 10.9.0.1/24 brd + dev tap0")
sh("ip addr add 10.9.1.1 peer 10.9.1.2/32 dev tap0")
sh("ip -6 addr add fd00::1/64 dev tap0 nodad")
sh("ip addr add 10.9.2.1/30 dev tun0")
sh(f"ip -d link show > {out}/ip-link.txt; ip addr show > {out}/ip-addr.txt")
SOL_NETLINK=270
def sock(cap=True):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    s.bind((0,0))
    s.setsockopt(SOL_NETLINK, 11, 1)  # NETLINK_EXT_ACK
    if cap: s.setsockopt(SOL_NETLINK, 10, 1)  # NETLINK_CAP_ACK
    s.setsockopt(SOL_NETLINK, 12, 1)  # NETLINK_GET_STRICT_CHK
    return s
def nla(kind, value):
    l = 4 + len(value)
    b = struct.pack("=HH", l, kind) + value
    return b + b"\0" * ((4 - len(b) % 4) % 4)
def msg(kind, flags, seq, payload):
    return struct.pack("=IHHII", 16 + len(payload), kind, flags, seq, 0) + payload
REQ, ACK, DUMP = 1, 4, 0x300
def ifinfo(index=0, flags=0, change=0): return struct.pack("=BxHiII", 0, 0, index, flags, change)
def exchange(s, data, name):
    s.send(data)
    n = 0
    while True:
        d = s.recv(65536)
        open(f"{out}/{name}-{n}", "wb").write(d)
        n += 1
        # stop at DONE or ERROR
        off = 0; done = False
        while off + 16 <= len(d):
            l, t = struct.unpack_from("=IH", d, off)
            if t in (2, 3): done = True
            off += (l + 3) & ~3
        if done: return
idx = socket.if_nametoindex("tap0")
tidx = socket.if_nametoindex("tun0")
skip_stats = nla(29, struct.pack("=I", 8))  # IFLA_EXT_MASK = RTEXT_FILTER_SKIP_STATS
s = sock()
exchange(s, msg(18, REQ|ACK|DUMP, 1, ifinfo() + skip_stats), "links-dump")
exchange(s, msg(18, REQ|ACK, 2, ifinfo(idx) + skip_stats), "link-tap")
exchange(s, msg(18, REQ|ACK, 3, ifinfo(tidx) + skip_stats), "link-tun")
exchange(s, msg(22, REQ|ACK|DUMP, 4, struct.pack("=BBBBI", 0, 0, 0, 0, idx)), "addrs-dump")
# RTM_SETLINK with IFLA_MTU 10: refused with an extended ack (capped).
exchange(s, msg(19, REQ|ACK, 5, ifinfo(idx) + nla(4, struct.pack("=I", 10))), "error-mtu-capped")
# The ack of a good RTM_SETLINK.
exchange(s, msg(19, REQ|ACK, 6, ifinfo(idx) + nla(4, struct.pack("=I", 1400))), "ack")
# Same error, uncapped: the request is echoed.
u = sock(cap=False)
exchange(u, msg(19, REQ|ACK, 7, ifinfo(idx) + nla(4, struct.pack("=I", 10))), "error-mtu-uncapped")
# Unknown ifindex: ENODEV.
exchange(s, msg(18, REQ|ACK, 8, ifinfo(9999) + skip_stats), "error-nodev")

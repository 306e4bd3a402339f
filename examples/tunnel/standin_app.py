"""Stand-in EAI / DPI applications for the tunnel example.

`listen PORT NAME`: accept MLLP connections, print each message's MSH-9 and
MSH-10 (metadata only), answer with an AA acknowledgement.
`send PORT NAME`: send one synthetic message and print the ACK's MSA.
"""
import socket
import sys
import threading
import time

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"


def frame(message: bytes) -> bytes:
    return SB + message + EB + CR


def read_frame(conn: socket.socket) -> bytes | None:
    buf = b""
    while EB + CR not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk
    start = buf.find(SB)
    return buf[start + 1 : buf.find(EB + CR)]


def fields(message: bytes) -> list[bytes]:
    return message.split(b"\r")[0].split(b"|")


def serve(conn: socket.socket, name: str) -> None:
    with conn:
        while (message := read_frame(conn)) is not None:
            msh = fields(message)
            print(f"[{name} app] received {msh[8].decode()} control id {msh[9].decode()}", flush=True)
            stamp = time.strftime("%Y%m%d%H%M%S")
            ack = (
                f"MSH|^~\\&|{msh[4].decode()}|{msh[5].decode()}|{msh[2].decode()}|{msh[3].decode()}|"
                f"{stamp}||ACK^{msh[8].decode().split('^')[1]}^ACK|ACK{msh[9].decode()}|P|2.5\r"
                f"MSA|AA|{msh[9].decode()}\r"
            ).encode()
            conn.sendall(frame(ack))


def listen(port: int, name: str) -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen()
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn, name), daemon=True).start()


def send(port: int, name: str) -> None:
    stamp = time.strftime("%Y%m%d%H%M%S")
    if name == "EAI":
        body = (
            f"MSH|^~\\&|EAI|CHU|DPI|CHU|{stamp}||ADT^A01^ADT_A01|MSG{stamp}|P|2.5|||AL|NE||8859/15\r"
            "EVN|A01|" + stamp + "\r"
            "PID|1||123456^^^CHU^PI||TEST^PATIENT||19700101|M\r"
            "PV1|1|I|CARDIO^101^1\r"
        )
    else:
        body = (
            f"MSH|^~\\&|DPI|CHU|EAI|CHU|{stamp}||ORU^R01^ORU_R01|RES{stamp}|P|2.5\r"
            "PID|1||123456^^^CHU^PI||TEST^PATIENT\r"
            "OBX|1|NM|GLU^Glucose||5.4|mmol/L|||||F\r"
        )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(frame(body.encode("latin-1")))
        ack = read_frame(conn)
    if ack is None:
        sys.exit(f"[{name} app] connection closed without an ACK")
    msa = [seg for seg in ack.split(b"\r") if seg.startswith(b"MSA")]
    print(f"[{name} app] ACK received: {msa[0].decode() if msa else 'no MSA'}", flush=True)


if __name__ == "__main__":
    action, port, who = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    (listen if action == "listen" else send)(port, who)

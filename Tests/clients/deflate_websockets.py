#!/usr/bin/env python3
"""permessage-deflate against Python websockets' own extension (sans I/O), as a client.

    deflate_websockets.py offer     print the Sec-WebSocket-Extensions value websockets offers
                                    by default (enable_client_permessage_deflate)
    deflate_websockets.py session   read JSON on stdin: {"response": the server's answer,
                                    "server_payloads": [hex], "server_text": bool,
                                    "client_messages": [hex]}; accept the response as the client
                                    (process_response_params raises if it is not acceptable),
                                    decode the server's compressed payloads and compress the
                                    client's messages; print JSON {"decoded": [hex],
                                    "client_payloads": [hex]}
"""
import json
import sys

from websockets.extensions.permessage_deflate import enable_client_permessage_deflate
from websockets.frames import Frame, Opcode
from websockets.headers import build_extension, parse_extension


def main():
    factory = enable_client_permessage_deflate(None)[0]
    if sys.argv[1] == "offer":
        print(build_extension([(factory.name, factory.get_request_params())]))
        return
    session = json.load(sys.stdin)
    [(name, params)] = parse_extension(session["response"])
    assert name == factory.name, name
    extension = factory.process_response_params(params, [])
    opcode = Opcode.TEXT if session["server_text"] else Opcode.BINARY
    decoded = []
    for payload in session["server_payloads"]:
        frame = extension.decode(Frame(opcode, bytes.fromhex(payload), rsv1=True), max_size=1 << 20)
        decoded.append(bytes(frame.data).hex())
    client_payloads = []
    for message in session["client_messages"]:
        frame = extension.encode(Frame(Opcode.BINARY, bytes.fromhex(message)))
        assert frame.rsv1
        client_payloads.append(bytes(frame.data).hex())
    print(json.dumps({"decoded": decoded, "client_payloads": client_payloads}))


if __name__ == "__main__":
    main()

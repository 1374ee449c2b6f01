from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class PingRequest(_message.Message):
    __slots__ = ("client_time",)
    CLIENT_TIME_FIELD_NUMBER: _ClassVar[int]
    client_time: int
    def __init__(self, client_time: _Optional[int] = ...) -> None: ...

class PingResponse(_message.Message):
    __slots__ = ("client_time", "server_time", "players", "playing")
    CLIENT_TIME_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    PLAYERS_FIELD_NUMBER: _ClassVar[int]
    PLAYING_FIELD_NUMBER: _ClassVar[int]
    client_time: int
    server_time: int
    players: int
    playing: int
    def __init__(self, client_time: _Optional[int] = ..., server_time: _Optional[int] = ..., players: _Optional[int] = ..., playing: _Optional[int] = ...) -> None: ...

from aphelion.proto import game_pb2 as _game_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Input(_message.Message):
    __slots__ = ("seq", "dx", "dy")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DX_FIELD_NUMBER: _ClassVar[int]
    DY_FIELD_NUMBER: _ClassVar[int]
    seq: int
    dx: int
    dy: int
    def __init__(self, seq: _Optional[int] = ..., dx: _Optional[int] = ..., dy: _Optional[int] = ...) -> None: ...

class Entity(_message.Message):
    __slots__ = ("id", "x", "y")
    ID_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    id: int
    x: int
    y: int
    def __init__(self, id: _Optional[int] = ..., x: _Optional[int] = ..., y: _Optional[int] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("tick", "entities")
    TICK_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    tick: int
    entities: _containers.RepeatedCompositeFieldContainer[Entity]
    def __init__(self, tick: _Optional[int] = ..., entities: _Optional[_Iterable[_Union[Entity, _Mapping]]] = ...) -> None: ...

class You(_message.Message):
    __slots__ = ("id", "ack", "x", "y")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    id: int
    ack: int
    x: int
    y: int
    def __init__(self, id: _Optional[int] = ..., ack: _Optional[int] = ..., x: _Optional[int] = ..., y: _Optional[int] = ...) -> None: ...

class C2S(_message.Message):
    __slots__ = ("input", "authenticate")
    INPUT_FIELD_NUMBER: _ClassVar[int]
    AUTHENTICATE_FIELD_NUMBER: _ClassVar[int]
    input: Input
    authenticate: _game_pb2.Authenticate
    def __init__(self, input: _Optional[_Union[Input, _Mapping]] = ..., authenticate: _Optional[_Union[_game_pb2.Authenticate, _Mapping]] = ...) -> None: ...

class S2C(_message.Message):
    __slots__ = ("snapshot", "you", "authenticate_response", "connected", "game_config", "disconnect")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    YOU_FIELD_NUMBER: _ClassVar[int]
    AUTHENTICATE_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    GAME_CONFIG_FIELD_NUMBER: _ClassVar[int]
    DISCONNECT_FIELD_NUMBER: _ClassVar[int]
    snapshot: Snapshot
    you: You
    authenticate_response: _game_pb2.AuthenticateResponse
    connected: _game_pb2.GameDetails
    game_config: _game_pb2.GameConfig
    disconnect: _game_pb2.Disconnect
    def __init__(self, snapshot: _Optional[_Union[Snapshot, _Mapping]] = ..., you: _Optional[_Union[You, _Mapping]] = ..., authenticate_response: _Optional[_Union[_game_pb2.AuthenticateResponse, _Mapping]] = ..., connected: _Optional[_Union[_game_pb2.GameDetails, _Mapping]] = ..., game_config: _Optional[_Union[_game_pb2.GameConfig, _Mapping]] = ..., disconnect: _Optional[_Union[_game_pb2.Disconnect, _Mapping]] = ...) -> None: ...

from aphelion.proto import game_pb2 as _game_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Type(_message.Message):
    __slots__ = ("kind", "token")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNSPECIFIED: _ClassVar[Type.Kind]
        CLIENT: _ClassVar[Type.Kind]
    UNSPECIFIED: Type.Kind
    CLIENT: Type.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    kind: Type.Kind
    token: bytes
    def __init__(self, kind: _Optional[_Union[Type.Kind, str]] = ..., token: _Optional[bytes] = ...) -> None: ...

class Control(_message.Message):
    __slots__ = ("token", "server_id", "options", "config", "client_token")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CLIENT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: bytes
    server_id: str
    options: _containers.ScalarMap[str, str]
    config: _game_pb2.GameConfig
    client_token: bytes
    def __init__(self, token: _Optional[bytes] = ..., server_id: _Optional[str] = ..., options: _Optional[_Mapping[str, str]] = ..., config: _Optional[_Union[_game_pb2.GameConfig, _Mapping]] = ..., client_token: _Optional[bytes] = ...) -> None: ...

class Ready(_message.Message):
    __slots__ = ("server_id", "name", "capacity")
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    name: str
    capacity: int
    def __init__(self, server_id: _Optional[str] = ..., name: _Optional[str] = ..., capacity: _Optional[int] = ...) -> None: ...

class Status(_message.Message):
    __slots__ = ("players", "capacity", "accepting")
    PLAYERS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    ACCEPTING_FIELD_NUMBER: _ClassVar[int]
    players: int
    capacity: int
    accepting: bool
    def __init__(self, players: _Optional[int] = ..., capacity: _Optional[int] = ..., accepting: _Optional[bool] = ...) -> None: ...

class Shutdown(_message.Message):
    __slots__ = ("deadline_ms", "reason")
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    deadline_ms: int
    reason: str
    def __init__(self, deadline_ms: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("nonce",)
    NONCE_FIELD_NUMBER: _ClassVar[int]
    nonce: int
    def __init__(self, nonce: _Optional[int] = ...) -> None: ...

class ClientAuth(_message.Message):
    __slots__ = ("player_id", "name", "session_id", "remote_address", "attributes", "resumed")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PLAYER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REMOTE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    player_id: str
    name: str
    session_id: bytes
    remote_address: str
    attributes: _containers.ScalarMap[str, str]
    resumed: bool
    def __init__(self, player_id: _Optional[str] = ..., name: _Optional[str] = ..., session_id: _Optional[bytes] = ..., remote_address: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ..., resumed: _Optional[bool] = ...) -> None: ...

class Rejected(_message.Message):
    __slots__ = ("code", "reason")
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    code: int
    reason: str
    def __init__(self, code: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class Disconnect(_message.Message):
    __slots__ = ("code", "reason")
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    code: int
    reason: str
    def __init__(self, code: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class C2S(_message.Message):
    __slots__ = ("authenticate",)
    AUTHENTICATE_FIELD_NUMBER: _ClassVar[int]
    authenticate: Authenticate
    def __init__(self, authenticate: _Optional[_Union[Authenticate, _Mapping]] = ...) -> None: ...

class Authenticate(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class S2C(_message.Message):
    __slots__ = ("authenticate_response", "connected", "game_config", "disconnect")
    AUTHENTICATE_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    GAME_CONFIG_FIELD_NUMBER: _ClassVar[int]
    DISCONNECT_FIELD_NUMBER: _ClassVar[int]
    authenticate_response: AuthenticateResponse
    connected: GameDetails
    game_config: GameConfig
    disconnect: Disconnect
    def __init__(self, authenticate_response: _Optional[_Union[AuthenticateResponse, _Mapping]] = ..., connected: _Optional[_Union[GameDetails, _Mapping]] = ..., game_config: _Optional[_Union[GameConfig, _Mapping]] = ..., disconnect: _Optional[_Union[Disconnect, _Mapping]] = ...) -> None: ...

class AuthenticateResponse(_message.Message):
    __slots__ = ("result", "description")
    class Result(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OK: _ClassVar[AuthenticateResponse.Result]
        OTHER: _ClassVar[AuthenticateResponse.Result]
        AUTH_METHOD_UNSUPPORTED: _ClassVar[AuthenticateResponse.Result]
        INVALID_ID: _ClassVar[AuthenticateResponse.Result]
        ID_IN_USE: _ClassVar[AuthenticateResponse.Result]
        NO_SERVER: _ClassVar[AuthenticateResponse.Result]
        REJECTED: _ClassVar[AuthenticateResponse.Result]
        TOO_MANY_ATTEMPTS: _ClassVar[AuthenticateResponse.Result]
        NOT_AUTHENTICATED: _ClassVar[AuthenticateResponse.Result]
    OK: AuthenticateResponse.Result
    OTHER: AuthenticateResponse.Result
    AUTH_METHOD_UNSUPPORTED: AuthenticateResponse.Result
    INVALID_ID: AuthenticateResponse.Result
    ID_IN_USE: AuthenticateResponse.Result
    NO_SERVER: AuthenticateResponse.Result
    REJECTED: AuthenticateResponse.Result
    TOO_MANY_ATTEMPTS: AuthenticateResponse.Result
    NOT_AUTHENTICATED: AuthenticateResponse.Result
    RESULT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    result: AuthenticateResponse.Result
    description: str
    def __init__(self, result: _Optional[_Union[AuthenticateResponse.Result, str]] = ..., description: _Optional[str] = ...) -> None: ...

class GameDetails(_message.Message):
    __slots__ = ("server_id", "name", "player_id", "players", "capacity", "extra")
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PLAYER_ID_FIELD_NUMBER: _ClassVar[int]
    PLAYERS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    name: str
    player_id: str
    players: int
    capacity: int
    extra: bytes
    def __init__(self, server_id: _Optional[str] = ..., name: _Optional[str] = ..., player_id: _Optional[str] = ..., players: _Optional[int] = ..., capacity: _Optional[int] = ..., extra: _Optional[bytes] = ...) -> None: ...

class GameConfig(_message.Message):
    __slots__ = ("content_type", "content")
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    content_type: str
    content: bytes
    def __init__(self, content_type: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...

class Disconnect(_message.Message):
    __slots__ = ("code", "reason")
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    code: int
    reason: str
    def __init__(self, code: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

from aphelion.proto import game_pb2 as _game_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Say(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class Said(_message.Message):
    __slots__ = ("player_id", "text")
    PLAYER_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    player_id: str
    text: str
    def __init__(self, player_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class C2S(_message.Message):
    __slots__ = ("say", "authenticate")
    SAY_FIELD_NUMBER: _ClassVar[int]
    AUTHENTICATE_FIELD_NUMBER: _ClassVar[int]
    say: Say
    authenticate: _game_pb2.Authenticate
    def __init__(self, say: _Optional[_Union[Say, _Mapping]] = ..., authenticate: _Optional[_Union[_game_pb2.Authenticate, _Mapping]] = ...) -> None: ...

class S2C(_message.Message):
    __slots__ = ("said", "authenticate_response", "connected", "game_config", "disconnect")
    SAID_FIELD_NUMBER: _ClassVar[int]
    AUTHENTICATE_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    GAME_CONFIG_FIELD_NUMBER: _ClassVar[int]
    DISCONNECT_FIELD_NUMBER: _ClassVar[int]
    said: Said
    authenticate_response: _game_pb2.AuthenticateResponse
    connected: _game_pb2.GameDetails
    game_config: _game_pb2.GameConfig
    disconnect: _game_pb2.Disconnect
    def __init__(self, said: _Optional[_Union[Said, _Mapping]] = ..., authenticate_response: _Optional[_Union[_game_pb2.AuthenticateResponse, _Mapping]] = ..., connected: _Optional[_Union[_game_pb2.GameDetails, _Mapping]] = ..., game_config: _Optional[_Union[_game_pb2.GameConfig, _Mapping]] = ..., disconnect: _Optional[_Union[_game_pb2.Disconnect, _Mapping]] = ...) -> None: ...

/**
 * SSH message numbers (RFC 4250 §4.1 and OpenSSH extensions).
 *
 * @since 0.1.0
 */

export const DISCONNECT = 1
export const IGNORE = 2
export const UNIMPLEMENTED = 3
export const DEBUG = 4
export const SERVICE_REQUEST = 5
export const SERVICE_ACCEPT = 6
export const EXT_INFO = 7
export const NEWCOMPRESS = 8
export const KEXINIT = 20
export const NEWKEYS = 21
/** Kex-method-specific messages occupy 30..49 (KEXDH_INIT = 30, KEXDH_REPLY = 31, GEX: 30..34). */
export const KEX_FIRST = 30
export const KEX_LAST = 49
export const KEXDH_INIT = 30
export const KEXDH_REPLY = 31
export const KEX_DH_GEX_REQUEST_OLD = 30
export const KEX_DH_GEX_GROUP = 31
export const KEX_DH_GEX_INIT = 32
export const KEX_DH_GEX_REPLY = 33
export const KEX_DH_GEX_REQUEST = 34
export const USERAUTH_REQUEST = 50
export const USERAUTH_FAILURE = 51
export const USERAUTH_SUCCESS = 52
export const USERAUTH_BANNER = 53
/** 60..79 are method-specific: PK_OK, PASSWD_CHANGEREQ, INFO_REQUEST share 60. */
export const USERAUTH_PK_OK = 60
export const USERAUTH_PASSWD_CHANGEREQ = 60
export const USERAUTH_INFO_REQUEST = 60
export const USERAUTH_INFO_RESPONSE = 61
export const GLOBAL_REQUEST = 80
export const REQUEST_SUCCESS = 81
export const REQUEST_FAILURE = 82
export const CHANNEL_OPEN = 90
export const CHANNEL_OPEN_CONFIRMATION = 91
export const CHANNEL_OPEN_FAILURE = 92
export const CHANNEL_WINDOW_ADJUST = 93
export const CHANNEL_DATA = 94
export const CHANNEL_EXTENDED_DATA = 95
export const CHANNEL_EOF = 96
export const CHANNEL_CLOSE = 97
export const CHANNEL_REQUEST = 98
export const CHANNEL_SUCCESS = 99
export const CHANNEL_FAILURE = 100

/**
 * Messages allowed during a key exchange (RFC 4253 §7.1): transport layer generic and kex messages.
 *
 * @example
 * ```ts
 * isKexMessage(KEXDH_INIT) // true
 * ```
 */
export const isKexMessage = (n: number): boolean =>
  (n >= 1 && n <= 4) || n === KEXINIT || n === NEWKEYS || (n >= KEX_FIRST && n <= KEX_LAST)

/**
 * Transport-layer messages (1..49).
 *
 * @example
 * ```ts
 * isTransportMessage(CHANNEL_DATA) // false
 * ```
 */
export const isTransportMessage = (n: number): boolean => n >= 1 && n <= 49

/** Disconnect reason codes (RFC 4250 §4.2.2). */
export const DisconnectReason = {
  HOST_NOT_ALLOWED_TO_CONNECT: 1,
  PROTOCOL_ERROR: 2,
  KEY_EXCHANGE_FAILED: 3,
  RESERVED: 4,
  MAC_ERROR: 5,
  COMPRESSION_ERROR: 6,
  SERVICE_NOT_AVAILABLE: 7,
  PROTOCOL_VERSION_NOT_SUPPORTED: 8,
  HOST_KEY_NOT_VERIFIABLE: 9,
  CONNECTION_LOST: 10,
  BY_APPLICATION: 11,
  TOO_MANY_CONNECTIONS: 12,
  AUTH_CANCELLED_BY_USER: 13,
  NO_MORE_AUTH_METHODS_AVAILABLE: 14,
  ILLEGAL_USER_NAME: 15
} as const

/** Channel open failure reason codes (RFC 4254 §5.1). */
export const ChannelOpenFailure = {
  ADMINISTRATIVELY_PROHIBITED: 1,
  CONNECT_FAILED: 2,
  UNKNOWN_CHANNEL_TYPE: 3,
  RESOURCE_SHORTAGE: 4
} as const

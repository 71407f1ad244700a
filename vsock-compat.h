/* vsock-compat.h
 * The one place where the Wireshark 4.0 / 4.4 / 4.6 API differences live.
 * Every other file uses the names defined here instead of #if on versions.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef VSOCK_COMPAT_H
#define VSOCK_COMPAT_H

#include <wireshark.h>   /* glib types, ws_attributes.h */
#include <ws_version.h>

#define VSOCK_WS_AT_LEAST(major, minor) \
    (WIRESHARK_VERSION_MAJOR > (major) || \
     (WIRESHARK_VERSION_MAJOR == (major) && WIRESHARK_VERSION_MINOR >= (minor)))

/* Callback booleans: gboolean until 4.2, bool afterwards (gcc 14 rejects a
 * mismatched function pointer). */
#if VSOCK_WS_AT_LEAST(4, 2)
#include <stdbool.h>
typedef bool vsock_cb_bool;
#else
typedef gboolean vsock_cb_bool;
#endif

/* Boolean preference variables: gboolean until 4.2, bool afterwards
 * (prefs_register_bool_preference takes a pointer to one). */
#if VSOCK_WS_AT_LEAST(4, 2)
typedef bool vsock_pref_bool;
#else
typedef gboolean vsock_pref_bool;
#endif

/* guint32_to_str_buf() became uint32_to_str_buf() (the old name deprecated). */
#if VSOCK_WS_AT_LEAST(4, 4)
#define vsock_uint32_to_str_buf(u, buf, len) uint32_to_str_buf((u), (buf), (len))
#define vsock_uint64_to_str_buf(u, buf, len) uint64_to_str_buf((u), (buf), (len))
#else
#define vsock_uint32_to_str_buf(u, buf, len) guint32_to_str_buf((u), (buf), (len))
#define vsock_uint64_to_str_buf(u, buf, len) guint64_to_str_buf((u), (buf), (len))
#endif

/* dissector_try_uint_new() is deprecated in 4.6 in favour of
 * dissector_try_uint_with_data(), same arguments; older versions get the new name. */
#if !VSOCK_WS_AT_LEAST(4, 5)
#define dissector_try_uint_with_data dissector_try_uint_new
#endif

/* val_to_str() gained a leading wmem scope in 4.6. */
#if VSOCK_WS_AT_LEAST(4, 5)
#define vsock_val_to_str(scope, val, vs, fmt) val_to_str((scope), (val), (vs), (fmt))
#else
#define vsock_val_to_str(scope, val, vs, fmt) ((void)(scope), val_to_str((val), (vs), (fmt)))
#endif

/* Conversation filters (epan/conversation_filter.h): since 4.2 the callbacks
 * take a user_data pointer and return bool, and registration passes it.
 *   static vsock_cb_bool f_valid(VSOCK_CONV_FILTER_ARGS(pinfo));
 *   static char *f_build(VSOCK_CONV_FILTER_ARGS(pinfo));
 *   vsock_register_conversation_filter("vsock", "VSOCK", f_valid, f_build); */
#if VSOCK_WS_AT_LEAST(4, 2)
#define VSOCK_CONV_FILTER_ARGS(pinfo) packet_info *pinfo, void *user_data _U_
#define vsock_register_conversation_filter(proto, name, valid, build) \
    register_conversation_filter((proto), (name), (valid), (build), NULL)
#else
#define VSOCK_CONV_FILTER_ARGS(pinfo) packet_info *pinfo
#define vsock_register_conversation_filter(proto, name, valid, build) \
    register_conversation_filter((proto), (name), (valid), (build))
#endif

/* Follow (epan/follow.h): 4.2 added stream_count and sub_stream_id callbacks;
 * NULL keeps the 4.0 behaviour (no sub-streams). */
#if VSOCK_WS_AT_LEAST(4, 2)
#define vsock_register_follow_stream(proto, tap, conv, index_filter, addr, port, handler) \
    register_follow_stream((proto), (tap), (conv), (index_filter), (addr), (port), (handler), NULL, NULL)
#else
#define vsock_register_follow_stream(proto, tap, conv, index_filter, addr, port, handler) \
    register_follow_stream((proto), (tap), (conv), (index_filter), (addr), (port), (handler))
#endif

/* wsutil/pint.h: pletohNN() became pletohuNN() in 4.6; both names work here. */
#include <wsutil/pint.h>
#if VSOCK_WS_AT_LEAST(4, 5)
#define pletoh16(p) pletohu16(p)
#define pletoh32(p) pletohu32(p)
#define pletoh64(p) pletohu64(p)
#else
#define pletohu16(p) pletoh16(p)
#define pletohu32(p) pletoh32(p)
#define pletohu64(p) pletoh64(p)
#endif

/* 4.4 added plugin_describe(): Wireshark asks what kind of plugin it loads.
 * 4.0 has neither the function nor the WS_PLUGIN_DESC_* values. */
#if VSOCK_WS_AT_LEAST(4, 4)
#include <wsutil/plugins.h>
#define VSOCK_DEFINE_PLUGIN_DESCRIBE(kind) \
    WS_DLL_PUBLIC uint32_t plugin_describe(void); \
    uint32_t plugin_describe(void) { return (kind); }
#else
#define VSOCK_DEFINE_PLUGIN_DESCRIBE(kind)
#endif

/* tvb_get_guint8() and tvb_find_guint8() became tvb_get_uint8() and
 * tvb_find_uint8() in 4.4 (the old names deprecated). */
#if VSOCK_WS_AT_LEAST(4, 4)
#define vsock_tvb_get_uint8(tvb, offset) tvb_get_uint8((tvb), (offset))
#define vsock_tvb_find_uint8(tvb, offset, maxlength, needle) tvb_find_uint8((tvb), (offset), (maxlength), (needle))
#else
#define vsock_tvb_get_uint8(tvb, offset) tvb_get_guint8((tvb), (offset))
#define vsock_tvb_find_uint8(tvb, offset, maxlength, needle) tvb_find_guint8((tvb), (offset), (maxlength), (needle))
#endif

#endif /* VSOCK_COMPAT_H */

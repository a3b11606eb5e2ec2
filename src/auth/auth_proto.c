#include "auth/auth_proto.h"

#include <string.h>

/* True if the array holds a NUL, so it can be read as a C string. */
#define AUTH_FIELD_TERMINATED(field)                                           \
	(memchr((field), '\0', sizeof(field)) != NULL)

bool auth_request_valid(const struct auth_request *req, size_t len)
{
	if (req == NULL || len != sizeof(*req))
		return false;
	if (req->version != AUTH_PROTO_VERSION)
		return false;
	switch (req->type) {
	case AUTH_REQUEST_PASSWORD:
	case AUTH_REQUEST_APOP:
	case AUTH_REQUEST_LOOKUP:
	case AUTH_REQUEST_CANCEL:
		break;
	default:
		return false;
	}
	return AUTH_FIELD_TERMINATED(req->peer) &&
	       AUTH_FIELD_TERMINATED(req->user) &&
	       AUTH_FIELD_TERMINATED(req->secret) &&
	       AUTH_FIELD_TERMINATED(req->challenge);
}

bool auth_reply_valid(const struct auth_reply *reply, size_t len)
{
	if (reply == NULL || len != sizeof(*reply))
		return false;
	if (reply->version != AUTH_PROTO_VERSION)
		return false;
	switch (reply->result) {
	case AUTH_RESULT_OK:
	case AUTH_RESULT_FAIL:
	case AUTH_RESULT_TEMPFAIL:
		break;
	default:
		return false;
	}
	if (reply->cause > AUTH_CAUSE_BUSY)
		return false;
	return AUTH_FIELD_TERMINATED(reply->user) &&
	       AUTH_FIELD_TERMINATED(reply->extra);
}

const char *auth_cause_str(enum auth_cause cause)
{
	switch (cause) {
	case AUTH_CAUSE_NONE:
		return "none";
	case AUTH_CAUSE_UNKNOWN_USER:
		return "unknown user";
	case AUTH_CAUSE_WRONG_PASSWORD:
		return "wrong password";
	case AUTH_CAUSE_BAD_HASH:
		return "malformed password hash";
	case AUTH_CAUSE_BAD_REQUEST:
		return "bad request";
	case AUTH_CAUSE_APOP_UNAVAILABLE:
		return "APOP needs a {PLAIN} password";
	case AUTH_CAUSE_INTERNAL:
		return "internal error";
	case AUTH_CAUSE_PEER_BUSY:
		return "too many authentication requests from this peer";
	case AUTH_CAUSE_BUSY:
		return "auth process busy";
	}
	return "unknown cause";
}

#pragma once

// Checks for the names Kubernetes puts on objects: object names (RFC 1123
// subdomains and labels), label and annotation keys (qualified names) and
// label values. The rules are the upstream ones, so an object KOLE accepts is
// one kube-apiserver would accept too, and the other way round.
//
// Each check returns the list of problems it found, in plain English and
// without the offending value, so that a caller can put each one into a 422
// field cause next to the field path and value. An empty list means valid.
// A valid value costs no allocation: the empty vector owns no memory.
//
// The checks are hand-written character loops rather than std::regex, which is
// slow and allocates; they run on every write and every selector parse.
//
// Thread safety: all functions are pure and may be called from any thread.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace kole::storage {

inline constexpr std::size_t kDns1123LabelMaxLength = 63;
inline constexpr std::size_t kDns1123SubdomainMaxLength = 253;
// Applies to the part of a qualified name after the optional "prefix/".
inline constexpr std::size_t kQualifiedNameMaxLength = 63;
inline constexpr std::size_t kLabelValueMaxLength = 63;

// An RFC 1123 subdomain, the form of most object names: at most 253
// characters, one or more '.'-separated parts, each a run of lowercase
// letters, digits and '-' that starts and ends with a letter or digit
// (for example "edge.example.com"). Parts have no length limit of their own.
std::vector<std::string> IsDns1123Subdomain(std::string_view value);

// An RFC 1123 label, the form of namespace names: at most 63 lowercase
// letters, digits and '-', starting and ending with a letter or digit
// (for example "edge-01").
std::vector<std::string> IsDns1123Label(std::string_view value);

// A qualified name, the form of label and annotation keys: an optional prefix
// that is a DNS subdomain followed by '/', then a name of 1 to 63 letters
// (either case), digits, '-', '_' or '.', starting and ending with a letter or
// digit (for example "app" or "kole.io/app"). At most one '/' is allowed.
std::vector<std::string> IsQualifiedName(std::string_view value);

// A label value: either empty, or at most 63 letters, digits, '-', '_' or '.',
// starting and ending with a letter or digit.
std::vector<std::string> IsValidLabelValue(std::string_view value);

}  // namespace kole::storage

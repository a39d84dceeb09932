#include "elasticbatch/environment_contract.h"

#include <algorithm>
#include <iterator>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace elasticbatch {

std::string EnvName(absl::string_view name) {
  std::string out(name);
  for (char& c : out) {
    c = absl::ascii_toupper(static_cast<unsigned char>(c));
    if (!absl::ascii_isupper(static_cast<unsigned char>(c)) &&
        !absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != '_') {
      c = '_';
    }
  }
  return out;
}

absl::Status CheckEnvNamesDistinct(const std::vector<std::string>& names,
                                   absl::string_view what) {
  std::map<std::string, std::string> seen;
  for (const std::string& name : names) {
    auto [it, inserted] = seen.emplace(EnvName(name), name);
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " names '", it->second, "' and '", name, "' both become ",
                       it->first, " in the environment; rename one"));
    }
  }
  return absl::OkStatus();
}

namespace {

bool SafeShellChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         absl::string_view("_@%+=:,./-").find(c) != absl::string_view::npos;
}

bool NameStart(char c) {
  return absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_';
}

bool NameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
}

// Length of a $NAME or ${NAME} reference at `s[i]` ('$'), 0 if none.
size_t VariableReference(absl::string_view s, size_t i) {
  if (i + 1 >= s.size()) return 0;
  if (NameStart(s[i + 1])) {
    size_t j = i + 2;
    while (j < s.size() && NameChar(s[j])) ++j;
    return j - i;
  }
  if (s[i + 1] == '{' && i + 2 < s.size() && NameStart(s[i + 2])) {
    size_t j = i + 3;
    while (j < s.size() && NameChar(s[j])) ++j;
    if (j < s.size() && s[j] == '}') return j + 1 - i;
  }
  return 0;
}

constexpr absl::string_view kUserArgsRefs[] = {"$PAI_USER_ARGS", "${PAI_USER_ARGS}"};

}  // namespace

std::vector<std::string> ShellSplit(absl::string_view text) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\\') {
      if (i + 1 < text.size() && text[i + 1] != '\n') word.push_back(text[i + 1]);
      ++i;
    } else if (c == '\'') {
      for (++i; i < text.size() && text[i] != '\''; ++i) word.push_back(text[i]);
    } else if (c == '"') {
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        // In double quotes a backslash escapes only these.
        if (text[i] == '\\' && i + 1 < text.size() &&
            absl::string_view("$`\"\\").find(text[i + 1]) != absl::string_view::npos) {
          ++i;
        }
        word.push_back(text[i]);
      }
    } else {
      word.push_back(c);
    }
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

std::string ShellQuote(absl::string_view word) {
  if (!word.empty() && std::all_of(word.begin(), word.end(), SafeShellChar)) {
    return std::string(word);
  }
  std::string out = "'";
  for (char c : word) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  out += "'";
  return out;
}

std::string UserArgs(const std::vector<std::pair<std::string, std::string>>& hps) {
  std::string out;
  for (const auto& [name, value] : hps) {
    absl::StrAppend(&out, out.empty() ? "" : " ", ShellQuote("--" + name), " ",
                    ShellQuote(value));
  }
  return out;
}

std::string ShellCommandFromWords(const std::vector<std::string>& words) {
  if (words.size() == 1) return words[0];
  std::string out;
  for (const std::string& w : words) {
    if (!out.empty()) out.push_back(' ');
    const bool bare = std::find(std::begin(kUserArgsRefs), std::end(kUserArgsRefs), w) !=
                      std::end(kUserArgsRefs);
    if (bare || (!w.empty() && std::all_of(w.begin(), w.end(), SafeShellChar))) {
      out += w;
      continue;
    }
    out.push_back('"');
    for (size_t i = 0; i < w.size(); ++i) {
      const char c = w[i];
      if (c == '$') {
        if (const size_t n = VariableReference(w, i); n > 0) {
          out.append(w, i, n);
          i += n - 1;
          continue;
        }
      }
      if (c == '"' || c == '\\' || c == '`' || c == '$') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  return out;
}

std::string ExpandUserArgs(absl::string_view command, absl::string_view user_args) {
  std::string out;
  enum class Quote { kNone, kSingle, kDouble } quote = Quote::kNone;
  for (size_t i = 0; i < command.size(); ++i) {
    const char c = command[i];
    switch (quote) {
      case Quote::kSingle:
        if (c == '\'') quote = Quote::kNone;
        out.push_back(c);
        continue;
      case Quote::kDouble:
        if (c == '\\' && i + 1 < command.size()) {
          out.push_back(c);
          out.push_back(command[++i]);
          continue;
        }
        if (c == '"') quote = Quote::kNone;
        out.push_back(c);
        continue;
      case Quote::kNone:
        break;
    }
    if (c == '\\' && i + 1 < command.size()) {
      out.push_back(c);
      out.push_back(command[++i]);
      continue;
    }
    if (c == '\'') quote = Quote::kSingle;
    if (c == '"') quote = Quote::kDouble;
    if (c == '$') {
      bool replaced = false;
      for (absl::string_view ref : kUserArgsRefs) {
        const absl::string_view rest = command.substr(i);
        if (!absl::StartsWith(rest, ref)) continue;
        // $PAI_USER_ARGSX is another variable.
        if (ref[1] != '{' && rest.size() > ref.size() && NameChar(rest[ref.size()])) {
          continue;
        }
        out.append(user_args.data(), user_args.size());
        i += ref.size() - 1;
        replaced = true;
        break;
      }
      if (replaced) continue;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace elasticbatch

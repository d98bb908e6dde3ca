#include "actors/agents/persona.hpp"

#include <fnmatch.h>
#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <system_error>

#include <re2/re2.h>
#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

namespace troupe::agents {

namespace {

using nlohmann::json;

/// An error at `line` (1-based, in the file) of `source`.
error at_line(const std::string& source, int line, const std::string& why) {
  return make_error(errc::bad_request, source + ":" + std::to_string(line) + ": " + why);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) {
    s.remove_prefix(1);
  }
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
    s.remove_suffix(1);
  }
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

/// Claude Code's names: lowercase letters, digits and hyphens.
bool valid_name(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

}  // namespace

expected<tool_rule> parse_tool_rule(std::string_view text) {
  text = trim(text);
  tool_rule rule;
  const auto open = text.find('(');
  if (open == std::string_view::npos) {
    rule.tool = std::string(text);
  } else {
    if (text.back() != ')') {
      return make_error(errc::bad_request,
                        "tool rule '" + std::string(text) + "' has no closing parenthesis");
    }
    rule.tool = std::string(trim(text.substr(0, open)));
    rule.pattern = std::string(text.substr(open + 1, text.size() - open - 2));
  }
  if (rule.tool.empty() || !std::all_of(rule.tool.begin(), rule.tool.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
      })) {
    return make_error(errc::bad_request, "'" + std::string(text) + "' is not a tool name");
  }
  return rule;
}

namespace {

/// Splits Claude Code's comma-separated tool list, keeping commas inside a
/// rule's parentheses.
std::vector<std::string> split_tools(std::string_view list) {
  std::vector<std::string> out;
  int depth = 0;
  std::string current;
  for (char c : list) {
    if (c == '(') {
      ++depth;
    } else if (c == ')' && depth > 0) {
      --depth;
    }
    if (c == ',' && depth == 0) {
      out.emplace_back(trim(current));
      current.clear();
    } else {
      current += c;
    }
  }
  if (!trim(current).empty()) {
    out.emplace_back(trim(current));
  }
  return out;
}

/// The file's line of a node in the front matter (which starts on line 2).
int line_of(const YAML::Node& node) {
  return node.Mark().line + 2;
}

expected<std::vector<tool_rule>> read_rules(const YAML::Node& node, const std::string& source,
                                            const char* key) {
  std::vector<std::string> texts;
  if (node.IsScalar()) {
    texts = split_tools(node.Scalar());
  } else if (node.IsSequence()) {
    for (const auto& item : node) {
      if (!item.IsScalar()) {
        return at_line(source, line_of(item), std::string(key) + ": each entry is a tool name");
      }
      texts.push_back(item.Scalar());
    }
  } else if (!node.IsNull()) {
    return at_line(source, line_of(node),
                   std::string(key) + ": a comma-separated list or a YAML list of tools");
  }
  std::vector<tool_rule> rules;
  for (const auto& text : texts) {
    auto rule = parse_tool_rule(text);
    if (!rule) {
      return at_line(source, line_of(node), std::string(key) + ": " + rule.err().message);
    }
    rules.push_back(std::move(*rule));
  }
  return rules;
}

expected<std::vector<std::string>> read_strings(const YAML::Node& node, const std::string& source,
                                                const std::string& key) {
  std::vector<std::string> out;
  if (node.IsScalar()) {
    out.push_back(node.Scalar());
  } else if (node.IsSequence()) {
    for (const auto& item : node) {
      if (!item.IsScalar()) {
        return at_line(source, line_of(item), key + ": each entry is a string");
      }
      out.push_back(item.Scalar());
    }
  } else if (!node.IsNull()) {
    return at_line(source, line_of(node), key + ": a string or a list of strings");
  }
  if (out.size() > persona_triggers_max) {
    return at_line(source, line_of(node),
                   key + ": at most " + std::to_string(persona_triggers_max) + " entries");
  }
  for (const auto& s : out) {
    if (s.empty() || s.size() > persona_trigger_bytes_max) {
      return at_line(source, line_of(node),
                     key + ": each entry has 1 to " + std::to_string(persona_trigger_bytes_max) +
                         " characters");
    }
  }
  return out;
}

expected<persona_triggers> read_triggers(const YAML::Node& node, const std::string& source,
                                         persona& p) {
  persona_triggers t;
  if (node.IsNull()) {
    return t;
  }
  if (!node.IsMap()) {
    return at_line(source, line_of(node), "triggers: a map of keywords, regex and files");
  }
  for (const auto& [field, list] : std::map<std::string, std::vector<std::string>*>{
           {"keywords", &t.keywords}, {"regex", &t.regex}, {"files", &t.files}}) {
    if (const auto value = node[field]) {
      auto strings = read_strings(value, source, "triggers." + field);
      if (!strings) {
        return std::move(strings).err();
      }
      *list = std::move(*strings);
    }
  }
  for (const auto& pattern : t.regex) {
    RE2::Options options;
    options.set_log_errors(false);
    options.set_case_sensitive(false);
    auto re = std::make_shared<const RE2>(pattern, options);
    if (!re->ok()) {
      return at_line(source, line_of(node["regex"]),
                     "triggers.regex: '" + pattern + "': " + re->error());
    }
    p.compiled.push_back(std::move(re));
  }
  return t;
}

/// `*` matches any run of characters; the rest is literal.
bool star_match(std::string_view pattern, std::string_view text) {
  size_t p = 0;
  size_t t = 0;
  size_t star = std::string_view::npos;
  size_t resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') {
    ++p;
  }
  return p == pattern.size();
}

/// What a rule's pattern is checked against, for the tools that have one.
std::optional<std::string> subject_of(std::string_view tool, const json& input) {
  auto field = [&](const char* name) -> std::optional<std::string> {
    if (input.is_object()) {
      auto it = input.find(name);
      if (it != input.end() && it->is_string()) {
        return it->get<std::string>();
      }
    }
    return std::string();
  };
  if (tool == "Bash") {
    return field("command");
  }
  if (tool == "Read" || tool == "Write" || tool == "Edit") {
    return field("file_path");
  }
  if (tool == "Glob" || tool == "Grep") {
    auto path = field("path");
    return path && !path->empty() ? path : field("pattern");
  }
  return std::nullopt;
}

/// The rule covers this call.
bool rule_matches(const tool_rule& rule, std::string_view tool, const json& input,
                  bool unknown_matches) {
  if (rule.tool != tool) {
    return false;
  }
  if (rule.pattern.empty()) {
    return true;
  }
  const auto subject = subject_of(tool, input);
  if (!subject) {
    return unknown_matches;
  }
  std::string_view pattern = rule.pattern;
  if (pattern.size() >= 2 && pattern.substr(pattern.size() - 2) == ":*") {
    pattern.remove_suffix(2);
    return std::string_view(*subject).substr(0, pattern.size()) == pattern;
  }
  return star_match(pattern, *subject);
}

bool word_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

/// `needle` (lower-case) occurs in `hay` (lower-case) as whole words.
bool has_word(std::string_view hay, std::string_view needle) {
  for (auto at = hay.find(needle); at != std::string_view::npos; at = hay.find(needle, at + 1)) {
    const bool left = at == 0 || !word_char(hay[at - 1]) || !word_char(needle.front());
    const auto end = at + needle.size();
    const bool right = end == hay.size() || !word_char(hay[end]) || !word_char(needle.back());
    if (left && right) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::string tool_rule::text() const {
  return pattern.empty() ? tool : tool + "(" + pattern + ")";
}

expected<persona> parse_persona(std::string_view text, const std::string& source) {
  if (text.size() > persona_file_bytes_max) {
    return at_line(source, 1, "larger than " + std::to_string(persona_file_bytes_max) + " bytes");
  }
  // The front matter: from a first line "---" to the next line "---".
  auto line_end = [&](size_t from) {
    const auto nl = text.find('\n', from);
    return nl == std::string_view::npos ? text.size() : nl;
  };
  auto line_is_fence = [&](size_t from, size_t to) {
    return trim(text.substr(from, to - from)) == "---";
  };
  const auto first_end = line_end(0);
  if (!line_is_fence(0, first_end)) {
    return at_line(source, 1, "a persona starts with YAML front matter: a line '---'");
  }
  size_t at = first_end + 1;
  size_t fence = std::string_view::npos;
  while (at < text.size()) {
    const auto end = line_end(at);
    if (line_is_fence(at, end)) {
      fence = at;
      break;
    }
    at = end + 1;
  }
  if (fence == std::string_view::npos) {
    return at_line(source, 1, "the front matter has no closing '---' line");
  }
  const auto front = std::string(text.substr(first_end + 1, fence - first_end - 1));
  const auto body_start = std::min(text.size(), line_end(fence) + 1);

  // YAML reports an error found at the end of the front matter (an
  // unclosed bracket) on the line after it: that is the fence, so it is
  // named by the last line of the front matter instead.
  const int last_front_line = 1 + static_cast<int>(std::count(front.begin(), front.end(), '\n'));
  auto yaml_line = [&](const YAML::Mark& mark) {
    return mark.line < 0 ? 1 : std::max(2, std::min(mark.line + 2, last_front_line));
  };
  YAML::Node loaded;
  try {
    loaded = YAML::Load(front);
  } catch (const YAML::Exception& e) {
    return at_line(source, yaml_line(e.mark), e.msg);
  }
  // Read through a const node: a missing key must not be added.
  const YAML::Node& doc = loaded;
  if (!doc.IsMap()) {
    return at_line(source, 2, "the front matter is not a map of keys");
  }
  persona p;
  p.source = source;
  p.prompt = std::string(trim(text.substr(body_start)));
  try {
    const auto name = doc["name"];
    if (!name || !name.IsScalar() || !valid_name(name.Scalar())) {
      return at_line(source, name ? line_of(name) : 2,
                     "name: required, lowercase letters, digits and hyphens (at most 64)");
    }
    p.name = name.Scalar();
    const auto description = doc["description"];
    if (!description || !description.IsScalar() || trim(description.Scalar()).empty()) {
      return at_line(source, description ? line_of(description) : 2,
                     "description: required, says when to use this persona");
    }
    p.description = std::string(trim(description.Scalar()));
    if (const auto tools = doc["tools"]) {
      auto rules = read_rules(tools, source, "tools");
      if (!rules) {
        return std::move(rules).err();
      }
      p.tools = std::move(*rules);
    }
    if (const auto denied = doc["disallowedTools"]) {
      auto rules = read_rules(denied, source, "disallowedTools");
      if (!rules) {
        return std::move(rules).err();
      }
      p.disallowed = std::move(*rules);
    }
    if (const auto model = doc["model"]) {
      if (!model.IsScalar() || trim(model.Scalar()).empty()) {
        return at_line(source, line_of(model), "model: sonnet, opus, haiku, inherit or a model id");
      }
      p.model = std::string(trim(model.Scalar()));
    }
    if (const auto priority = doc["priority"]) {
      int value = 0;
      if (!priority.IsScalar() || !YAML::convert<int>::decode(priority, value) || value < -1000 ||
          value > 1000) {
        return at_line(source, line_of(priority), "priority: an integer from -1000 to 1000");
      }
      p.priority = value;
    }
    if (const auto budget = doc["context_tokens"]) {
      int64_t value = 0;
      if (!budget.IsScalar() || !YAML::convert<int64_t>::decode(budget, value) || value < 1000 ||
          value > 10'000'000) {
        return at_line(source, line_of(budget),
                       "context_tokens: an integer from 1,000 to 10,000,000");
      }
      p.context_tokens = value;
    }
    if (const auto triggers = doc["triggers"]) {
      auto t = read_triggers(triggers, source, p);
      if (!t) {
        return std::move(t).err();
      }
      p.triggers = std::move(*t);
    }
  } catch (const YAML::Exception& e) {
    return at_line(source, yaml_line(e.mark), e.msg);
  }
  return p;
}

tool_verdict check_tool(const persona& p, std::string_view tool, const json& input) {
  for (const auto& rule : p.disallowed) {
    if (rule_matches(rule, tool, input, true)) {
      return {false, "persona '" + p.name + "' disallows " + rule.text()};
    }
  }
  if (!p.tools) {
    return {true, {}};
  }
  for (const auto& rule : *p.tools) {
    if (rule_matches(rule, tool, input, false)) {
      return {true, {}};
    }
  }
  bool named = std::any_of(p.tools->begin(), p.tools->end(),
                           [&](const tool_rule& r) { return r.tool == tool; });
  if (named) {
    std::string allowed;
    for (const auto& rule : *p.tools) {
      if (rule.tool == tool) {
        allowed += (allowed.empty() ? "" : ", ") + rule.text();
      }
    }
    return {false, "persona '" + p.name + "' allows only " + allowed};
  }
  return {false, "persona '" + p.name + "' does not use the tool " + std::string(tool)};
}

std::vector<std::string> mentioned_paths(std::string_view prompt) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  size_t at = 0;
  while (at < prompt.size()) {
    while (at < prompt.size() && std::isspace(static_cast<unsigned char>(prompt[at]))) {
      ++at;
    }
    const auto start = at;
    while (at < prompt.size() && !std::isspace(static_cast<unsigned char>(prompt[at]))) {
      ++at;
    }
    auto word = prompt.substr(start, at - start);
    // Quotes, brackets and sentence punctuation around a path.
    while (!word.empty() &&
           std::string_view("\"'`([{<").find(word.front()) != std::string_view::npos) {
      word.remove_prefix(1);
    }
    while (!word.empty() &&
           std::string_view("\"'`)]}>,.;:!?").find(word.back()) != std::string_view::npos) {
      word.remove_suffix(1);
    }
    if (word.empty() || word.size() > 4096) {
      continue;
    }
    const auto dot = word.rfind('.');
    const bool extension =
        dot != std::string_view::npos && dot > 0 && dot + 1 < word.size() &&
        std::all_of(word.begin() + static_cast<std::ptrdiff_t>(dot) + 1, word.end(),
                    [](char c) { return std::isalnum(static_cast<unsigned char>(c)); });
    if ((word.find('/') != std::string_view::npos || extension) &&
        word.find("://") == std::string_view::npos && seen.emplace(word).second) {
      out.emplace_back(word);
    }
  }
  return out;
}

persona_choice match_personas(const std::vector<persona>& personas, std::string_view prompt) {
  prompt = prompt.substr(0, match_prompt_bytes_max);
  const auto folded = lower(prompt);
  const auto paths = mentioned_paths(prompt);
  persona_choice choice;
  choice.rule = persona_choice_rule;
  for (const auto& p : personas) {
    persona_candidate c;
    c.name = p.name;
    c.priority = p.priority;
    for (const auto& keyword : p.triggers.keywords) {
      if (has_word(folded, lower(keyword))) {
        c.reasons.push_back("keyword '" + keyword + "'");
      }
    }
    for (size_t i = 0; i < p.compiled.size(); ++i) {
      if (RE2::PartialMatch(re2::StringPiece(prompt.data(), prompt.size()), *p.compiled[i])) {
        c.reasons.push_back("regex '" + p.triggers.regex[i] + "'");
      }
    }
    for (const auto& glob : p.triggers.files) {
      for (const auto& path : paths) {
        const auto slash = path.rfind('/');
        const auto base = slash == std::string::npos ? path : path.substr(slash + 1);
        if (fnmatch(glob.c_str(), path.c_str(), 0) == 0 ||
            (glob.find('/') == std::string::npos && fnmatch(glob.c_str(), base.c_str(), 0) == 0)) {
          c.reasons.push_back("file '" + path + "' matches '" + glob + "'");
          break;
        }
      }
    }
    c.score = static_cast<int>(c.reasons.size());
    if (c.score > 0) {
      choice.candidates.push_back(std::move(c));
    }
  }
  std::sort(choice.candidates.begin(), choice.candidates.end(),
            [](const persona_candidate& a, const persona_candidate& b) {
              if (a.priority != b.priority) {
                return a.priority > b.priority;
              }
              if (a.score != b.score) {
                return a.score > b.score;
              }
              return a.name < b.name;
            });
  if (!choice.candidates.empty()) {
    choice.chosen = choice.candidates.front().name;
  }
  return choice;
}

const persona* persona_catalog::find(std::string_view name) const {
  for (const auto& p : personas) {
    if (p.name == name) {
      return &p;
    }
  }
  return nullptr;
}

persona_catalog load_personas(const std::vector<std::filesystem::path>& dirs) {
  namespace fs = std::filesystem;
  persona_catalog catalog;
  for (const auto& dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      continue;
    }
    std::vector<fs::path> files;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() == ".md" && it->is_regular_file(ec)) {
        files.push_back(it->path());
      }
    }
    if (ec) {
      catalog.problems.push_back({dir.string(), "cannot list the directory: " + ec.message()});
      continue;
    }
    std::sort(files.begin(), files.end());
    std::set<std::string> here;
    for (const auto& file : files) {
      const auto source = file.string();
      const auto size = fs::file_size(file, ec);
      if (ec || size > persona_file_bytes_max) {
        catalog.problems.push_back(
            {source,
             ec ? "cannot read: " + ec.message()
                : source + ":1: larger than " + std::to_string(persona_file_bytes_max) + " bytes"});
        continue;
      }
      std::ifstream in(file, std::ios::binary);
      std::stringstream text;
      text << in.rdbuf();
      if (!in && !in.eof()) {
        catalog.problems.push_back({source, "cannot read the file"});
        continue;
      }
      auto parsed = parse_persona(text.str(), source);
      if (!parsed) {
        catalog.problems.push_back({source, parsed.err().message});
        continue;
      }
      if (!here.insert(parsed->name).second) {
        catalog.problems.push_back({source, source + ":1: the name '" + parsed->name +
                                                "' is taken by another file in " + dir.string()});
        continue;
      }
      auto same = std::find_if(catalog.personas.begin(), catalog.personas.end(),
                               [&](const persona& p) { return p.name == parsed->name; });
      if (same != catalog.personas.end()) {
        *same = std::move(*parsed);
      } else {
        catalog.personas.push_back(std::move(*parsed));
      }
    }
  }
  std::sort(catalog.personas.begin(), catalog.personas.end(),
            [](const persona& a, const persona& b) { return a.name < b.name; });
  return catalog;
}

}  // namespace troupe::agents

// troupectl tree.

#include "apps/troupectl/commands.hpp"

namespace troupe::ctl {

namespace {


struct tree_row {
  std::string label;
  // Terminal columns of `label`; the box-drawing glyphs take 3 bytes but 1 column.
  size_t label_columns = 0;
  std::string kind;
  std::string state;
  std::string restarts;
  std::string last_failure;
};


tree_row make_row(const json& actor, std::string label, size_t label_columns) {
  return {std::move(label),
          label_columns,
          field_text(actor, "kind"),
          field_text(actor, "state"),
          field_text(actor, "restarts"),
          one_line(field_text(actor, "last_failure"))};
}

// Rows for the children of `actor`, drawn like tree(1): `prefix` is the
// column of bars that the ancestors leave open.
void collect_children(const json& actor, const std::string& prefix, size_t prefix_columns,
                      size_t depth, std::vector<tree_row>& rows) {
  if (!actor.is_object() || !actor.contains("children") || !actor["children"].is_array()) {
    return;
  }
  const auto& children = actor["children"];
  if (depth >= tree_depth_max && !children.empty()) {
    rows.push_back({prefix + "└── …", prefix_columns + 5, "", "", "", ""});
    return;
  }
  for (size_t i = 0; i < children.size(); ++i) {
    const bool last = i + 1 == children.size();
    const auto path = field_text(children[i], "path");
    rows.push_back(make_row(children[i], prefix + (last ? "└── " : "├── ") + path,
                            prefix_columns + 4 + path.size()));
    collect_children(children[i], prefix + (last ? "    " : "│   "), prefix_columns + 4, depth + 1,
                     rows);
  }
}

void print_tree(const std::vector<tree_row>& rows) {
  tree_row header{"ACTOR", 5, "KIND", "STATE", "RESTARTS", "LAST FAILURE"};
  size_t label_width = header.label_columns;
  size_t kind_width = header.kind.size();
  size_t state_width = header.state.size();
  size_t restarts_width = header.restarts.size();
  for (const auto& row : rows) {
    label_width = std::max(label_width, row.label_columns);
    kind_width = std::max(kind_width, row.kind.size());
    state_width = std::max(state_width, row.state.size());
    restarts_width = std::max(restarts_width, row.restarts.size());
  }
  const auto print_row = [&](const tree_row& row) {
    std::cout << row.label << std::string(label_width - row.label_columns + 2, ' ') << std::left
              << std::setw(static_cast<int>(kind_width + 2)) << row.kind
              << std::setw(static_cast<int>(state_width + 2)) << row.state << std::right
              << std::setw(static_cast<int>(restarts_width)) << row.restarts << "  "
              << row.last_failure << "\n";
  };
  print_row(header);
  for (const auto& row : rows) {
    print_row(row);
  }
}

int run_tree(const context& ctx) {
  auto client = ctx.make_client();
  const auto tree = call(client, "GET", "/v1/actors");
  if (tree.failed) {
    return fail(*tree.failed);
  }
  if (ctx.json_output) {
    print_raw(tree.reply.body);
    return exit_ok;
  }
  const auto root = parse_json(tree.reply.body);
  if (!root || !root->is_object()) {
    return fail(bad_reply("GET /v1/actors"));
  }
  std::vector<tree_row> rows;
  const auto root_path = field_text(*root, "path");
  const auto label = root_path == "-" || root_path.empty() ? std::string("/") : root_path;
  rows.push_back(make_row(*root, label, label.size()));
  collect_children(*root, "", 0, 1, rows);
  print_tree(rows);
  return exit_ok;
}

std::function<int(const context&)> add_tree(CLI::App& /*sub*/) {
  return run_tree;
}

}  // namespace

run_fn add_tree_command(CLI::App& sub) {
  return add_tree(sub);
}

}  // namespace troupe::ctl

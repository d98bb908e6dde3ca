#include "runtime/actor/serve.hpp"

#include <caf/all.hpp>

namespace troupe {

caf::behavior serve(caf::event_based_actor* self, std::shared_ptr<const handler_table> table,
                    decider decide) {
  return {
      [self, table = std::move(table), decide = std::move(decide)](const envelope& in) -> envelope {
        try {
          return table->dispatch(in);
        } catch (const std::exception& e) {
          auto why = "handler for '" + in.type + "' threw: " + e.what();
          if (decide(failure{failure_kind::exception, why}) == directive::resume) {
            return make_error_envelope(make_error(errc::internal, why), in.correlation_id);
          }
          // The caller still gets an answer, so it does not retry a message
          // that crashes every incarnation it reaches.
          self->quit(caf::make_error(caf::sec::runtime_error, why));
          return make_error_envelope(make_error(errc::internal, why + "; the actor restarts"),
                                     in.correlation_id);
        }
      },
  };
}

}  // namespace troupe

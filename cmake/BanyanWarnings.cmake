# Warnings for project code: -Wall -Wextra, clean. Applied per target so that
# third-party headers (included as SYSTEM) stay out of it.
function(banyan_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>)
endfunction()

# Warnings for project code: -Wall -Wextra, clean. Applied per target so that
# third-party headers (included as SYSTEM) stay out of it.
function(banyan_warnings target)
  target_compile_options(${target} PRIVATE
    # Designated initializers leave the other fields at their defaults on purpose.
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers>
    # GCC 12 reports a false -Wrestrict inside std::string's operator+ at -O3
    # (GCC bug 105329, fixed in 13).
    $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU>,$<VERSION_LESS:$<CXX_COMPILER_VERSION>,13>>:-Wno-restrict>)
endfunction()

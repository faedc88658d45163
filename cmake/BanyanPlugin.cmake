# banyan_add_plugin(NAME KIND SOURCES ... [LIBS ...])
#
# Builds a plugin shared library and places it with its plugin.yaml under
# <build>/lib/banyan/plugins/<kind>/<name>/, the layout the plugin host searches.
# Installed to <prefix>/lib/banyan/plugins/<kind>/<name>/.
function(banyan_add_plugin name kind)
  cmake_parse_arguments(P "" "MANIFEST" "SOURCES;LIBS" ${ARGN})
  set(target banyan_${kind}_${name})
  add_library(${target} MODULE ${P_SOURCES})
  target_link_libraries(${target} PRIVATE Banyan::sdk ${P_LIBS})
  set(out ${BANYAN_PLUGIN_BUILD_DIR}/${kind}/${name})
  set_target_properties(${target} PROPERTIES
    LIBRARY_OUTPUT_DIRECTORY ${out}
    OUTPUT_NAME banyan_${kind}_${name}
    PREFIX lib)
  if(COMMAND banyan_warnings)
    banyan_warnings(${target})
  endif()
  if(NOT P_MANIFEST)
    set(P_MANIFEST ${CMAKE_CURRENT_SOURCE_DIR}/plugin.yaml)
  endif()
  configure_file(${P_MANIFEST} ${out}/plugin.yaml COPYONLY)
  # Always lib/banyan/plugins: the binary finds plugins at <bin>/../lib/banyan/plugins.
  install(TARGETS ${target} LIBRARY DESTINATION lib/banyan/plugins/${kind}/${name})
  install(FILES ${P_MANIFEST} DESTINATION lib/banyan/plugins/${kind}/${name})
endfunction()

# banyan_component(NAME DIR) builds core/<dir>/*.cpp (except *_test.cpp) into the
# static library banyan_<name>, and *_test.cpp into the GoogleTest binary
# banyan_<name>_tests, registered with CTest.
function(banyan_component name)
  cmake_parse_arguments(C "" "" "LIBS;TEST_LIBS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  file(GLOB tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*_test.cpp)
  if(tests)
    list(REMOVE_ITEM srcs ${tests})
  endif()
  add_library(banyan_${name} STATIC ${srcs})
  target_include_directories(banyan_${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(banyan_${name} PUBLIC Banyan::sdk ${C_LIBS})
  banyan_warnings(banyan_${name})
  if(BANYAN_TESTS AND tests)
    add_executable(banyan_${name}_tests ${tests})
    target_link_libraries(banyan_${name}_tests PRIVATE banyan_${name} ${C_TEST_LIBS} GTest::gtest GTest::gtest_main)
    target_compile_definitions(banyan_${name}_tests PRIVATE
      BANYAN_SOURCE_DIR="${PROJECT_SOURCE_DIR}" BANYAN_BINARY_DIR="${PROJECT_BINARY_DIR}")
    banyan_warnings(banyan_${name}_tests)
    gtest_discover_tests(banyan_${name}_tests DISCOVERY_TIMEOUT 60
      PROPERTIES LABELS unit ENVIRONMENT "BANYAN_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
  endif()
endfunction()

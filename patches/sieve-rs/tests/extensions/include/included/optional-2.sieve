require "include";
require "variables";

global "result";

set "result" "${result} TWO";

keep;

